from django.urls import path

from labeling.api import export_views, import_views, member_views, views, webhook_views

urlpatterns = [
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<slug:slug>/members/", member_views.MembersView.as_view(), name="api-members"),
    path(
        "projects/<slug:slug>/members/<str:username>/",
        member_views.MemberView.as_view(),
        name="api-member",
    ),
    path("projects/<slug:slug>/import/", import_views.ImportView.as_view(), name="api-import"),
    path("imports/<int:job_id>/", import_views.ImportJobView.as_view(), name="api-import-job"),
    path("projects/<slug:slug>/next/", views.NextView.as_view(), name="api-next"),
    path("projects/<slug:slug>/progress/", views.ProgressView.as_view(), name="api-progress"),
    path("projects/<slug:slug>/export/", export_views.ExportView.as_view(), name="api-export"),
    path("projects/<slug:slug>/stats/", export_views.StatsView.as_view(), name="api-stats"),
    path(
        "projects/<slug:slug>/webhooks/",
        webhook_views.WebhookListView.as_view(),
        name="api-webhooks",
    ),
    path(
        "projects/<slug:slug>/webhooks/<int:webhook_id>/",
        webhook_views.WebhookDetailView.as_view(),
        name="api-webhook",
    ),
    path(
        "projects/<slug:slug>/webhooks/<int:webhook_id>/deliveries/",
        webhook_views.WebhookDeliveriesView.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "comparisons/<int:comparison_id>/judgement/",
        views.JudgementView.as_view(),
        name="api-judgement",
    ),
]
