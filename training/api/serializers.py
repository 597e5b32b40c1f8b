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
    steps = StepSerializer(many=True, read_only=True)

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
