from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from training.models import Run


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "metrics",
            "error",
            "started_at",
            "finished_at",
        ]


class RunSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    steps = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "project",
            "kind",
            "number",
            "trigger",
            "status",
            "progress",
            "metrics",
            "error",
            "celery_task_id",
            "created_at",
            "started_at",
            "finished_at",
            "steps",
        ]

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, run: Run) -> list[dict]:
        """The round's steps in the order they run."""
        steps = sorted(run.steps.all(), key=lambda step: step.pk)
        return StepSerializer(steps, many=True).data


class RoundStatusSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Run.ACTIVE)
    step = serializers.ChoiceField(
        choices=[k for k in Run.Kind.values if k != Run.Kind.ROUND],
        allow_null=True,
        help_text="The step running now, or the next to run.",
    )
    progress = serializers.FloatField(help_text="Of the whole round, 0..1.")


class TrainingStatusSerializer(serializers.Serializer):
    has_training = serializers.BooleanField(
        help_text="Whether new comparisons come from training rounds; if not, from imports."
    )
    round = RoundStatusSerializer(allow_null=True, help_text="The round queued or running.")
    judgements_to_next_round = serializers.IntegerField(
        allow_null=True,
        help_text="With no round active: judgements still needed to start one automatically.",
    )
