"""Request and response shapes of the labeling API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.permissions import may
from core.errors import InvalidConfig
from labeling.config import MAX_K, validate_project_config
from labeling.models import ImportJob, Item, Judgement, Project


def _contains_nul(value) -> bool:
    """Whether a NUL character appears in any string of a JSON value, keys included."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


class ProjectSerializer(serializers.ModelSerializer):
    config = serializers.JSONField(required=False, default=dict)

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "kind",
            "instructions",
            "overlap",
            "round_size",
            "gold_rate",
            "lease_seconds",
            "config",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {
            "overlap": {"min_value": 1, "max_value": 100},
            "round_size": {"min_value": 1},
            "gold_rate": {"min_value": 0.0, "max_value": 1.0},
            "lease_seconds": {"min_value": 10, "max_value": 7 * 24 * 3600},
        }

    def to_representation(self, instance):
        """Staff see the whole project; annotators not its config (model paths, training
        settings), which is none of their business."""
        data = super().to_representation(instance)
        user = getattr(self.context.get("request"), "user", None)
        if user is None or not may(user, "labeling.view_project"):
            data.pop("config", None)
        return data

    def validate_config(self, value):
        # PostgreSQL's jsonb cannot hold U+0000: refuse it here rather than fail on save.
        if _contains_nul(value):
            raise serializers.ValidationError("Null characters are not allowed.")
        return value

    def validate(self, attrs):
        kind = attrs.get("kind", Project.Kind.TEXT)
        try:
            attrs["config"] = validate_project_config(kind, attrs.get("config") or {})
        except InvalidConfig as exc:
            raise serializers.ValidationError({"config": {exc.key: exc.message}}) from None
        return attrs


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"No user named {value!r}.")
        return user


class MemberResponseSerializer(serializers.Serializer):
    username = serializers.CharField()
    project = serializers.CharField()
    created = serializers.BooleanField()


class ImportResponseSerializer(serializers.Serializer):
    job = serializers.IntegerField(help_text="The import's job (GET /api/imports/{job}/).")
    created_items = serializers.IntegerField()
    created_comparisons = serializers.IntegerField()
    created_judgements = serializers.IntegerField()
    skipped_duplicates = serializers.IntegerField(
        help_text="Lines already in the project, or earlier in this file: not stored again."
    )


class ShownItemSerializer(serializers.ModelSerializer):
    text = serializers.CharField(required=False)
    clip_url = serializers.CharField(required=False)
    poster_url = serializers.CharField(required=False)

    class Meta:
        model = Item
        fields = ["id", "text", "clip_url", "poster_url"]

    def to_representation(self, item: Item) -> dict:
        shown: dict = {"id": item.pk}
        if item.clip:
            shown["clip_url"] = item.clip.url
            if item.poster:
                shown["poster_url"] = item.poster.url
        else:
            shown["text"] = item.text
        return shown


class ProgressSerializer(serializers.Serializer):
    judged = serializers.IntegerField()
    remaining = serializers.IntegerField()


class AssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The comparison's id; judge it at /api/comparisons/{id}/judgement/."
    )
    project = serializers.CharField()
    prompt = serializers.CharField(allow_blank=True)
    items = ShownItemSerializer(many=True, help_text="In the order shown: left, then right.")
    lease_expires_at = serializers.DateTimeField()
    progress = ProgressSerializer()


class JudgementRequestSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(
        choices=["left", "right", "tie", "skip"],
        required=False,
        help_text="For a pair, as shown: left, right, tie or skip. For K > 2 only skip.",
    )
    ranking = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=2,
        max_length=MAX_K,
        required=False,
        help_text="For K > 2: every item id of the comparison, best first.",
    )
    time_spent_ms = serializers.IntegerField(
        min_value=0, max_value=24 * 3600 * 1000, required=False, allow_null=True
    )
    shown_order = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=2,
        max_length=MAX_K,
        required=False,
        help_text="The item ids in the order you saw them (the 'items' of next); an answer "
        "to an order that is no longer your lease's is a 409 asking you to reload.",
    )
    next = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also lease your next comparison of this project and return it as 'next' "
        "(one round trip per judgement instead of two).",
    )

    def validate(self, attrs):
        if ("choice" in attrs) == ("ranking" in attrs):
            raise serializers.ValidationError("Send exactly one of 'choice' and 'ranking'.")
        return attrs


class JudgementSerializer(serializers.ModelSerializer):
    comparison = serializers.IntegerField(source="comparison_id")

    class Meta:
        model = Judgement
        fields = [
            "id",
            "comparison",
            "choice",
            "ranking",
            "shown_order",
            "time_spent_ms",
            "created_at",
            "revised_at",
        ]
        extra_kwargs = {
            "revised_at": {"help_text": "When you last changed this answer (PUT); null if never."}
        }


class JudgementWithNextSerializer(JudgementSerializer):
    next = AssignmentSerializer(
        required=False,
        allow_null=True,
        help_text="Only when the request asked for it: your next comparison, or null when "
        "nothing is left for you.",
    )

    class Meta(JudgementSerializer.Meta):
        fields = [*JudgementSerializer.Meta.fields, "next"]


class PairKappaSerializer(serializers.Serializer):
    kappa = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="Comparisons both annotators answered.")
    ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False)


class AnnotatorStatsSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    judgements = serializers.IntegerField()
    skips = serializers.IntegerField()
    agreement_with_majority = serializers.FloatField(allow_null=True)
    agreement_comparisons = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_judged = serializers.IntegerField(allow_null=True, help_text="null for annotators")
    cohen_kappa_with_others = PairKappaSerializer(
        allow_null=True, help_text="This annotator's pairs pooled into one table, no names."
    )


class AgreementSerializer(serializers.Serializer):
    """Inter-annotator agreement (labeling/agreement.py); null where undefined."""

    comparisons = serializers.IntegerField()
    answers = serializers.IntegerField()
    fleiss_kappa = serializers.FloatField(allow_null=True)
    fleiss_kappa_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    krippendorff_alpha_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    alpha_level = serializers.ChoiceField(choices=["nominal", "ordinal"])
    cohen_kappa = serializers.DictField(
        child=PairKappaSerializer(),
        allow_null=True,
        help_text='Per pair of annotators, keyed "name|name"; null for annotators.',
    )
    confidence = serializers.FloatField()
    resamples = serializers.IntegerField()
    pair_resamples = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    project = serializers.CharField()
    items = serializers.IntegerField()
    comparisons = serializers.IntegerField()
    comparisons_open = serializers.IntegerField()
    comparisons_complete = serializers.IntegerField()
    comparisons_closed = serializers.IntegerField()
    judgements = serializers.IntegerField()
    annotators = AnnotatorStatsSerializer(many=True)
    agreement = AgreementSerializer()


class ImportJobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    result = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "project",
            "status",
            "progress",
            "size_bytes",
            "result",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ImportResponseSerializer(allow_null=True))
    def get_result(self, job: ImportJob) -> dict | None:
        return {"job": job.pk, **job.result} if job.result else None
