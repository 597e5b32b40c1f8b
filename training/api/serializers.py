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
