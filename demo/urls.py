from django.urls import path

from demo import views

app_name = "demo"
urlpatterns = [
    path("demo/lm-status/", views.demo_lm_status, name="lm-status"),
]
