"""Training tables: versions of reward models and policies, and runs of the loop."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Project


class ModelVersion(models.Model):
    """A checkpoint and its metrics; versions of one project count up from 1."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    checkpoint = models.FileField(upload_to="checkpoints/", blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey(
        "Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project.slug} {type(self).__name__.lower()} v{self.version}"


class RewardModel(ModelVersion):
    class Meta(ModelVersion.Meta):
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="reward_model_version"),
        ]


class Policy(ModelVersion):
    class Meta(ModelVersion.Meta):
        verbose_name_plural = "policies"
        permissions = [("export_policy", "Can download policy checkpoints")]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="policy_version"),
        ]


class Run(models.Model):
    """One round of the loop, or one step of a round, with its state and progress."""

    class Kind(models.TextChoices):
        ROUND = "round", "Round"
        FIT_REWARD_MODEL = "fit_reward_model", "Fit reward model"
        IMPROVE_POLICY = "improve_policy", "Improve policy"
        GENERATE_COMPARISONS = "generate_comparisons", "Generate comparisons"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    round = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="steps"
    )
    number = models.PositiveIntegerField(default=0, help_text="The round's number in its project.")
    trigger = models.CharField(max_length=30, blank=True, help_text="api, admin, judgements, cli")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("start_round", "Can start training rounds")]
        constraints = [
            # Rounds of one project never overlap: at most one round is queued or running.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(kind="round", status__in=["queued", "running"]),
                name="one_active_round_per_project",
            ),
            models.UniqueConstraint(
                fields=["round", "kind"],
                condition=Q(round__isnull=False),
                name="one_step_of_each_kind_per_round",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_by_status")]

    def __str__(self) -> str:
        label = f"round {self.number}" if self.kind == self.Kind.ROUND else self.kind
        return f"{self.project.slug} {label} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Arena(models.Model):
    """A blind evaluation of two or more policy versions of a project: samples of each
    version paired into ordinary comparisons, judged by annotators who are not told which
    version made what (ArenaEntry remembers), and ranked by training.ml.arena_scores.

    queued → running (a worker claimed it and samples) → sampled (its comparisons are in
    the queue) → finished (each has ``project.overlap`` judgements); or failed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Sampling"
        SAMPLED = "sampled", "Being judged"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="arenas")
    versions = models.JSONField(help_text="The policy version numbers compared.")
    comparisons = models.PositiveIntegerField(help_text="Comparisons wanted.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1 of the sampling.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Claims of the sampling task; the current claim is the last."
    )
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    result = models.JSONField(
        default=dict, blank=True, help_text="The leaderboard as it stood when it finished."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    sampled_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("start_arena", "Can start arenas")]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="arena_by_status")]

    def __str__(self) -> str:
        shown = " vs ".join(f"v{v}" for v in self.versions)
        return f"{self.project.slug} arena {self.pk}: {shown} ({self.status})"


class ArenaEntry(models.Model):
    """One item of an arena's comparison and the policy version that made it: kept here,
    never on the item, so nothing an annotator receives says which version it is."""

    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="entries")
    comparison = models.ForeignKey(
        "labeling.Comparison", on_delete=models.CASCADE, related_name="+"
    )
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField(help_text="The policy version that made the item.")

    class Meta:
        verbose_name_plural = "arena entries"
        constraints = [
            models.UniqueConstraint(fields=["arena", "item"], name="arena_entry_item"),
        ]

    def __str__(self) -> str:
        return f"arena {self.arena_id}: {self.item} from v{self.version}"
