from django.urls import path

from training.api import arena_views, views

urlpatterns = [
    path("projects/<slug:slug>/rounds/", views.RoundsView.as_view(), name="api-rounds"),
    path(
        "projects/<slug:slug>/training/",
        views.TrainingStatusView.as_view(),
        name="api-training-status",
    ),
    path("projects/<slug:slug>/arena/", arena_views.ArenasView.as_view(), name="api-arenas"),
    path(
        "projects/<slug:slug>/arena/<int:arena_id>/",
        arena_views.ArenaView.as_view(),
        name="api-arena",
    ),
    path("runs/<int:run_id>/", views.RunView.as_view(), name="api-run"),
    path(
        "policies/<int:policy_id>/export/",
        views.PolicyExportView.as_view(),
        name="api-policy-export",
    ),
]
