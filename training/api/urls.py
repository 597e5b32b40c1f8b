from django.urls import path

from training.api import views

urlpatterns = [
    path("projects/<slug:slug>/rounds/", views.RoundsView.as_view(), name="api-rounds"),
    path(
        "projects/<slug:slug>/training/",
        views.TrainingStatusView.as_view(),
        name="api-training-status",
    ),
    path("runs/<int:run_id>/", views.RunView.as_view(), name="api-run"),
    path(
        "policies/<int:policy_id>/export/",
        views.PolicyExportView.as_view(),
        name="api-policy-export",
    ),
]
