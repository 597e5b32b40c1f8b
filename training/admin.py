"""Admin for reward models, policies and runs; projects get a 'start a round' action."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.errors import DomainError
from labeling.admin import ProjectAdmin, short_time
from labeling.models import Project
from training import services
from training.models import Arena, Policy, RewardModel, Run


@admin.action(
    description="Start a training round for the selected projects", permissions=["start_round"]
)
def start_round(modeladmin, request, queryset):
    for project in queryset:
        try:
            round_run = services.start_round(project=project, trigger="admin")
        except DomainError as exc:
            modeladmin.message_user(request, f"{project.slug}: {exc.message}", messages.WARNING)
        else:
            modeladmin.message_user(
                request,
                f"{project.slug}: round {round_run.number} queued (run {round_run.pk}).",
                messages.SUCCESS,
            )


admin.site.unregister(Project)


@admin.register(Project)
class TrainingProjectAdmin(ProjectAdmin):
    """Labeling's project admin, with the actions of training and a link to the dashboard."""

    actions = [*ProjectAdmin.actions, start_round]

    def has_start_round_permission(self, request) -> bool:
        return request.user.has_perm("training.start_round")

    def page_links(self, project: Project) -> list[tuple[str, str]]:
        dashboard = reverse("training:dashboard", args=[project.slug])
        return [*super().page_links(project), ("Dashboard", dashboard)]


class VersionAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "short_metrics", "created"]  # parent: on the form
    list_filter = ["project"]
    search_fields = ["project__slug"]
    raw_id_fields = ["parent", "run"]

    @admin.display(description="metrics")
    def short_metrics(self, obj):
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in obj.metrics.items()}
        return format_html_join(mark_safe("<br>"), "{}={}", list(shown.items())[:4])

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)


admin.site.register(RewardModel, VersionAdmin)
admin.site.register(Policy, VersionAdmin)


class StepInline(admin.TabularInline):
    model = Run
    fk_name = "round"
    extra = 0
    fields = ["kind", "status", "progress", "attempts", "started_at", "finished_at", "error"]
    readonly_fields = fields
    can_delete = False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "number", "status", "progress", "created"]
    list_filter = ["project", "kind", "status", "trigger"]
    search_fields = ["project__slug", "celery_task_id", "error"]
    raw_id_fields = ["round"]
    inlines = [StepInline]

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)


@admin.register(Arena)
class ArenaAdmin(admin.ModelAdmin):
    """Arenas, read-only: they are started from the API or the dashboard, and their
    comparisons live on in the project's queue."""

    list_display = [
        "id",
        "project",
        "shown_versions",
        "comparisons",
        "status",
        "progress",
        "created",
    ]
    list_filter = ["project", "status"]
    search_fields = ["project__slug", "error"]
    readonly_fields = [
        "project",
        "versions",
        "comparisons",
        "status",
        "progress",
        "attempts",
        "celery_task_id",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "sampled_at",
        "finished_at",
        "error",
        "result",
        "page",
    ]
    fields = readonly_fields

    @admin.display(description="versions")
    def shown_versions(self, obj):
        return ", ".join(f"v{version}" for version in obj.versions)

    @admin.display(description="leaderboard")
    def page(self, obj):
        url = reverse("training:arena", args=[obj.project.slug, obj.pk])
        return format_html('<a href="{}">the arena\'s page</a>', url)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
