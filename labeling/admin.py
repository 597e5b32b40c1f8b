"""Django admin for every labeling table, with counts, filters and an export action."""

from __future__ import annotations

import io
import json
import zipfile

from django.contrib import admin
from django.db.models import Count, Func, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponse

from labeling import selectors
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    Item,
    Judgement,
    Membership,
    Project,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.action(description="Export judgements of the selected projects (TRL and full JSONL, zip)")
def export_projects(modeladmin, request, queryset):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for project in queryset:
            for kind, rows in (("trl", selectors.export_trl), ("full", selectors.export_full)):
                lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows(project))
                archive.writestr(f"{project.slug}-{kind}.jsonl", lines)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="judgements.zip"'
    return response


def _count(model) -> Coalesce:
    """The number of ``model`` rows of each project, as a correlated subquery."""
    rows = model.objects.filter(project=OuterRef("pk")).order_by().values("project")
    return Coalesce(Subquery(rows.annotate(n=Func("pk", function="COUNT")).values("n")), 0)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "kind",
        "overlap",
        "round_size",
        "n_comparisons",
        "n_judgements",
    ]
    list_filter = ["kind"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
    actions = [export_projects]
    prepopulated_fields = {"slug": ["name"]}

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

    @admin.display(description="text")
    def short_text(self, obj):
        return (obj.text[:80] + "…") if len(obj.text) > 80 else obj.text


class ComparisonItemInline(admin.TabularInline):
    model = ComparisonItem
    extra = 0
    raw_id_fields = ["item"]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "k", "judgement_count", "is_gold", "created_at"]
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


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "comparison", "annotator", "status", "expires_at"]
    list_filter = ["project", "status"]
    search_fields = ["annotator__username"]
    raw_id_fields = ["comparison"]


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "comparison",
        "annotator",
        "choice",
        "time_spent_ms",
        "source",
        "created_at",
    ]
    list_filter = ["project", "choice", "source", "annotator"]
    search_fields = ["annotator__username", "comparison__id"]
    raw_id_fields = ["comparison"]
    date_hierarchy = "created_at"
