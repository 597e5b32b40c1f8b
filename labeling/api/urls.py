from django.urls import path

from labeling.api import views

urlpatterns = [
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<slug:slug>/members/", views.MembersView.as_view(), name="api-members"),
    path("projects/<slug:slug>/import/", views.ImportView.as_view(), name="api-import"),
    path("imports/<int:job_id>/", views.ImportJobView.as_view(), name="api-import-job"),
    path("projects/<slug:slug>/next/", views.NextView.as_view(), name="api-next"),
    path("projects/<slug:slug>/progress/", views.ProgressView.as_view(), name="api-progress"),
    path("projects/<slug:slug>/export/", views.ExportView.as_view(), name="api-export"),
    path("projects/<slug:slug>/stats/", views.StatsView.as_view(), name="api-stats"),
    path(
        "comparisons/<int:comparison_id>/judgement/",
        views.JudgementView.as_view(),
        name="api-judgement",
    ),
]
