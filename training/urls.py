from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("projects/<slug:slug>/dashboard/", views.dashboard, name="dashboard"),
    path("projects/<slug:slug>/dashboard/curves.png", views.learning_curves_png, name="curves"),
]
