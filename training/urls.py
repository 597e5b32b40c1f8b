from django.urls import path

from training import arena_views, views

app_name = "training"
urlpatterns = [
    path("projects/<slug:slug>/dashboard/", views.dashboard, name="dashboard"),
    path("projects/<slug:slug>/dashboard/curves.png", views.learning_curves_png, name="curves"),
    path("projects/<slug:slug>/dashboard/forecast.png", views.forecast_png, name="forecast"),
    path("projects/<slug:slug>/arena/", arena_views.start_arena_page, name="arena-start"),
    path("projects/<slug:slug>/arena/<int:arena_id>/", arena_views.arena_page, name="arena"),
    path(
        "projects/<slug:slug>/arena/<int:arena_id>/scores.png",
        arena_views.arena_scores_png,
        name="arena-scores",
    ),
]
