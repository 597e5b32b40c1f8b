"""Admin for reward models, policies and runs; projects get a 'start a round' action."""

from django.contrib import admin, messages

from core.errors import DomainError
from labeling.admin import ProjectAdmin
from labeling.models import Project
from training import services
from training.models import Policy, RewardModel, Run


@admin.action(description="Start a training round for the selected projects")
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
    """Labeling's project admin, with the actions of training."""

    actions = [*ProjectAdmin.actions, start_round]


class VersionAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "parent", "short_metrics", "created_at"]
    list_filter = ["project"]
    search_fields = ["project__slug"]
    raw_id_fields = ["parent", "run"]

    @admin.display(description="metrics")
    def short_metrics(self, obj):
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in obj.metrics.items()}
        return ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4])


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
    list_display = [
        "id",
        "project",
        "kind",
        "number",
        "status",
        "progress",
        "trigger",
        "created_at",
    ]
    list_filter = ["project", "kind", "status"]
    search_fields = ["project__slug", "celery_task_id", "error"]
    raw_id_fields = ["round"]
    inlines = [StepInline]
