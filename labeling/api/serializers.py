"""Request and response shapes of the labeling API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.permissions import may
from core.errors import InvalidConfig
from labeling.config import MAX_K, validate_project_config
from labeling.conversations import ROLES
from labeling.feedback import LEVELS, MAX_CRITIQUE_CHARS, RATING_MAX, RATING_MIN, STRENGTHS
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


class MessageSerializer(serializers.Serializer):
    """One chat message (labeling/conversations.py)."""

    role = serializers.ChoiceField(choices=list(ROLES))
    content = serializers.CharField()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": list(ROLES)},
                        "content": {"type": "string"},
                    },
                    "required": ["role", "content"],
                },
            },
        ]
    }
)
class PromptField(serializers.JSONField):
    """A prompt: its text, or for a conversation its chat messages as imported."""


class ShownItemSerializer(serializers.ModelSerializer):
    text = serializers.CharField(
        required=False, help_text="A conversation's: the final message's content."
    )
    messages = MessageSerializer(
        many=True,
        required=False,
        help_text="Only for a conversation: the candidate's assistant messages, the last "
        "one the answer to judge.",
    )
    clip_url = serializers.CharField(required=False)
    poster_url = serializers.CharField(required=False)

    class Meta:
        model = Item
        fields = ["id", "text", "messages", "clip_url", "poster_url"]

    def to_representation(self, item: Item) -> dict:
        shown: dict = {"id": item.pk}
        if item.clip:
            shown["clip_url"] = item.clip.url
            if item.poster:
                shown["poster_url"] = item.poster.url
        else:
            shown["text"] = item.text
            if item.messages is not None:
                shown["messages"] = item.messages
        return shown


class ProgressSerializer(serializers.Serializer):
    judged = serializers.IntegerField()
    remaining = serializers.IntegerField()


class FeedbackFormSerializer(serializers.Serializer):
    """A project's feedback form (labeling/feedback.py): a part absent is not asked for."""

    strength = serializers.ChoiceField(choices=list(LEVELS), required=False)
    ratings = serializers.ChoiceField(choices=list(LEVELS), required=False)
    critique = serializers.ChoiceField(choices=list(LEVELS), required=False)
    edit = serializers.ChoiceField(choices=list(LEVELS), required=False)
    both_bad = serializers.BooleanField(required=False)


class AssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The comparison's id; judge it at /api/comparisons/{id}/judgement/."
    )
    project = serializers.CharField()
    prompt = PromptField(
        help_text="The prompt's text; for a conversation its messages, as imported."
    )
    items = ShownItemSerializer(many=True, help_text="In the order shown: left, then right.")
    lease_expires_at = serializers.DateTimeField()
    progress = ProgressSerializer()
    feedback = FeedbackFormSerializer(
        help_text="What the answer may or must carry beside the choice (config feedback); "
        "{} when only the choice."
    )
    criteria = serializers.ListField(
        child=serializers.CharField(), help_text="The criteria each item is rated on."
    )


RATINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": RATING_MIN, "maximum": RATING_MAX},
    },
}


class _AsSent(serializers.Field):
    """A feedback part, passed on as sent: labeling/services/feedback_answers.py checks
    it against the project's form and answers a 400 naming the field."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "string", "enum": [*STRENGTHS, ""], "nullable": True})
class StrengthField(_AsSent):
    pass


@extend_schema_field({**RATINGS_SCHEMA, "nullable": True})
class RatingsField(_AsSent):
    pass


@extend_schema_field({"type": "string", "maxLength": MAX_CRITIQUE_CHARS, "nullable": True})
class CritiqueField(_AsSent):
    pass


@extend_schema_field({"type": "string", "nullable": True})
class EditTextField(_AsSent):
    pass


class AnswerSerializer(serializers.Serializer):
    """What POST and PUT check of a judgement's body themselves. The feedback parts are
    passed on as sent (labeling/services/feedback_answers.py checks them against the
    project's form), so they are no fields here: building a serializer copies each of its
    fields, on every judgement. JudgementRequestSerializer documents them."""

    choice = serializers.ChoiceField(
        choices=["left", "right", "tie", "skip", "both_bad"],
        required=False,
        help_text="For a pair, as shown: left, right, tie or skip. For K > 2 only skip. "
        "both_bad (either) where the project's feedback form offers it.",
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


FEEDBACK_PARTS = ("strength", "ratings", "critique", "edit")


class JudgementRequestSerializer(AnswerSerializer):
    """A judgement's body as the schema documents it: the answer and its feedback."""

    strength = StrengthField(
        required=False,
        allow_null=True,
        help_text="How much better the winner is: slight, clear or strong; with choice left "
        "or right only.",
    )
    ratings = RatingsField(
        required=False,
        allow_null=True,
        help_text=f"Every item of the comparison rated {RATING_MIN}..{RATING_MAX} on every "
        'criterion of the project: {"<item id>": {"<criterion>": n}}; not with a skip.',
    )
    critique = CritiqueField(
        required=False,
        allow_null=True,
        help_text=f"Free text, at most {MAX_CRITIQUE_CHARS} characters (a skip may carry one).",
    )
    edit = EditTextField(
        required=False,
        allow_null=True,
        help_text="An improved text of the winner (left, right or the ranking's first): "
        "stored as a new item, ranked above the winner.",
    )


class EditedItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class JudgementSerializer(serializers.ModelSerializer):
    comparison = serializers.IntegerField(source="comparison_id")
    strength = serializers.ChoiceField(choices=[*STRENGTHS, ""], help_text='"" when not given.')
    ratings = RatingsField(allow_null=True, help_text="null when not given.")
    edit = EditedItemSerializer(
        allow_null=True, help_text="The edit of the winner, an item of its own; null if none."
    )

    class Meta:
        model = Judgement
        fields = [
            "id",
            "comparison",
            "choice",
            "ranking",
            "shown_order",
            "time_spent_ms",
            "strength",
            "ratings",
            "critique",
            "edit",
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
