"""Django admin for every labeling table, with counts, filters and an export action."""

from __future__ import annotations

import io
import json
import zipfile

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import Count, Func, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from labeling import exports, summaries, webhooks
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    ImportJob,
    Item,
    Judgement,
    JudgementRevision,
    Membership,
    Project,
    Webhook,
    WebhookDelivery,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "qualification", "qualification_accuracy"]
    readonly_fields = ["qualification_accuracy"]


@admin.action(
    description="Export judgements of the selected projects (TRL and full JSONL, zip)",
    permissions=["export_judgements"],
)
def export_projects(modeladmin, request, queryset):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for project in queryset:
            for kind, rows in (("trl", exports.export_trl), ("full", exports.export_full)):
                lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows(project))
                archive.writestr(f"{project.slug}-{kind}.jsonl", lines)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="judgements.zip"'
    return response


def short_time(value) -> str:
    """A time as "2026-05-03 14:20" (local): it wraps at the space, where the admin's own
    date format keeps a list's column 150 px wide."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def _count(model) -> Coalesce:
    """The number of ``model`` rows of each project, as a correlated subquery."""
    rows = model.objects.filter(project=OuterRef("pk")).order_by().values("project")
    return Coalesce(Subquery(rows.annotate(n=Func("pk", function="COUNT")).values("n")), 0)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [  # the name, overlap and gold rate are on the form: the list fits 1280 px
        "slug",
        "kind",
        "round_size",
        "n_comparisons",
        "n_judgements",
        "pages",
    ]
    list_filter = ["kind"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
    actions = [export_projects]
    prepopulated_fields = {"slug": ["name"]}

    def has_export_judgements_permission(self, request) -> bool:
        return request.user.has_perm("labeling.export_judgements")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(  # one subquery each: a join of both tables multiplies their rows
                _comparisons=_count(Comparison),
                _judgements=_count(Judgement),
            )
        )

    @admin.display(description="comparisons", ordering="_comparisons")
    def n_comparisons(self, obj):
        return obj._comparisons

    @admin.display(description="judgements", ordering="_judgements")
    def n_judgements(self, obj):
        return obj._judgements

    def page_links(self, project: Project) -> list[tuple[str, str]]:
        """(label, url) of the project's pages outside the admin; training's admin adds
        the dashboard."""
        return [("Label", reverse("labeling:annotate", args=[project.slug]))]

    @admin.display(description="pages")
    def pages(self, obj):
        return format_html_join(" · ", '<a href="{1}">{0}</a>', self.page_links(obj))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # the links beside "History" (admin/labeling/project/change_form.html)
        project = self.get_object(request, unquote(object_id))
        links = self.page_links(project) if project is not None else []
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "page_links": links}
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["user__username", "project__slug"]
    autocomplete_fields = ["user"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "short_text", "clip", "created_at"]
    list_filter = ["project"]
    search_fields = ["prompt", "text"]
    # a conversation's messages are shown, not edited: prompt and text are derived from them
    exclude = ["prompt_messages", "messages"]
    readonly_fields = ["conversation"]

    @admin.display(description="conversation")
    def conversation(self, obj):
        """The prompt's messages, then the candidate's, each with its role; "-" for plain text."""
        turns = [*(obj.prompt_messages or []), *(obj.messages or [])]
        if not turns:
            return "-"
        return format_html_join(
            "", "<p><strong>{}</strong>: {}</p>", ((m["role"], m["content"]) for m in turns)
        )

    @admin.display(description="text")
    def short_text(self, obj):
        return (obj.text[:80] + "…") if len(obj.text) > 80 else obj.text


class ComparisonItemInline(admin.TabularInline):
    model = ComparisonItem
    extra = 0
    raw_id_fields = ["item"]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "k", "judgement_count", "is_gold", "created"]
    list_filter = ["project", "status"]
    search_fields = ["items__text", "items__prompt"]
    inlines = [ComparisonItemInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_k=Count("slots"))

    @admin.display(description="K", ordering="_k")
    def k(self, obj):
        return obj._k

    @admin.display(boolean=True, description="gold")
    def is_gold(self, obj):
        return obj.is_gold

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "comparison", "annotator", "status", "expires"]
    list_filter = ["project", "status"]
    search_fields = ["annotator__username"]
    raw_id_fields = ["comparison"]

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj):
        return short_time(obj.expires_at)


REVISION_FIELDS = [
    "choice",
    "ranking",
    "shown_order",
    "time_spent_ms",
    "feedback",
    "answered_at",
    "revised_at",
]


class JudgementRevisionInline(admin.TabularInline):
    """The answers a judgement replaced, oldest first: history, never edited."""

    model = JudgementRevision
    extra = 0
    fields = REVISION_FIELDS
    readonly_fields = REVISION_FIELDS
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    # what was compared and who won first; the ids, time spent and source are on the form
    list_display = ["summary", "choice", "annotator", "project", "when"]
    list_filter = ["project", "choice", "source", "annotator"]
    search_fields = ["annotator__username", "comparison__id"]
    raw_id_fields = ["comparison"]
    date_hierarchy = "created_at"
    inlines = [JudgementRevisionInline]
    # the feedback beside the choice, as the annotator gave it: shown, never edited here
    readonly_fields = ["summary", "strength", "ratings", "critique", "edit"]

    def get_queryset(self, request):
        items = Prefetch("comparison__items", queryset=Item.objects.only("pk", "text"))
        return super().get_queryset(request).prefetch_related(items)

    @admin.display(description="judgement")
    def summary(self, obj):
        items = {item.pk: item for item in obj.comparison.items.all()}
        return summaries.judgement_summary(obj, items)

    @admin.display(description="when", ordering="created_at")
    def when(self, obj):
        if obj.revised_at is None:
            return short_time(obj.created_at)
        return format_html(
            "{}<br>revised {}", short_time(obj.created_at), short_time(obj.revised_at)
        )


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Imports, read only: what was uploaded, by whom, and what came of it."""

    list_display = ["id", "project", "importer", "status", "progress", "created"]
    list_filter = ["status", "project"]
    readonly_fields = [field.name for field in ImportJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Webhooks, registered through the API (its answer shows the secret, once): here they
    are paused (active) or deleted; the secret shows only its start."""

    list_display = ["id", "project", "short_url", "subscribed", "active", "created"]
    list_filter = ["active", "project"]
    search_fields = ["url", "project__slug"]
    fields = ["project", "url", "events", "active", "secret_start", "created_by", "created_at"]
    readonly_fields = ["project", "url", "events", "secret_start", "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj):
        webhooks.delete_webhook(project=obj.project, webhook_id=obj.pk)  # keeps has_webhooks

    def delete_queryset(self, request, queryset):
        for webhook in queryset.select_related("project"):
            self.delete_model(request, webhook)

    @admin.display(description="url", ordering="url")
    def short_url(self, obj):
        return obj.url if len(obj.url) <= 40 else obj.url[:39] + "…"

    @admin.display(description="events")
    def subscribed(self, obj):
        return ", ".join(obj.events)

    @admin.display(description="secret")
    def secret_start(self, obj):
        prefix = webhooks.SECRET_PREFIX
        return f"{prefix}{obj.secret.removeprefix(prefix)[:4]}…"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Webhook deliveries, read only: each event sent to a webhook and how it went."""

    list_display = ["id", "hook", "event", "status", "attempts", "last_status_code", "created"]
    list_filter = ["status", "event", "webhook__project"]
    list_select_related = ["webhook__project"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="webhook", ordering="webhook")
    def hook(self, obj):
        return f"{obj.webhook.project} #{obj.webhook_id}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)
