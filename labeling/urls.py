from django.urls import path

from labeling import views

app_name = "labeling"
urlpatterns = [
    path("", views.home, name="home"),
    path("label/<slug:slug>/", views.annotate, name="annotate"),
    path("media/<path:path>", views.protected_media, name="media"),
]
