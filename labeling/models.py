"""The labeling tables: projects, their members, items, comparisons, leases, judgements
and the answers judgements replaced."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.config import validate_project_config


class Project(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Text (language-model responses)"
        TRAJECTORY = "trajectory", "Trajectory (gymnasium clips)"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT)
    instructions = models.TextField(blank=True, help_text="Markdown, shown to annotators.")
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Judgements wanted per comparison (skips do not count)."
    )
    round_size = models.PositiveIntegerField(
        default=100, help_text="New judgements that start a training round."
    )
    gold_rate = models.FloatField(
        default=0.0,
        help_text="Share of assignments drawn from gold comparisons (0..1).",
    )
    lease_seconds = models.PositiveIntegerField(
        default=600,
        help_text="How long an annotator holds a comparison before it returns.",
    )
    config = models.JSONField(default=dict, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="labeling_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    has_webhooks = models.BooleanField(
        default=False,
        editable=False,
        help_text="Whether any webhook is registered (kept by labeling.webhooks): a "
        "judgement on a project without one costs no query for them.",
    )

    class Meta:
        ordering = ["slug"]
        # What staff may do is these and Django's own permissions (core/roles.py groups them
        # into roles); being staff alone only lets a user see every project.
        permissions = [
            ("manage_members", "Can add a project's annotators"),
            ("import_items", "Can import items and follow imports"),
            ("export_judgements", "Can export a project's judgements"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_gte_1"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1),
                name="project_gold_rate_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        self.config = validate_project_config(self.kind, self.config)


class Membership(models.Model):
    class Qualification(models.TextChoices):
        """Where a member stands with the project's ``qualification`` (when it has one):
        passed or failed by their gold answers, or set by staff (waived, blocked;
        pending again to retest)."""

        PENDING = "pending", "Not qualified yet"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Below the bar"
        WAIVED = "waived", "Qualified by staff"
        BLOCKED = "blocked", "Blocked by staff"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    qualification = models.CharField(
        max_length=10, choices=Qualification.choices, default=Qualification.PENDING
    )
    qualification_accuracy = models.FloatField(
        null=True, blank=True, help_text="The share of qualification gold answered right."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}"


class Item(models.Model):
    """One thing an annotator looks at: a response to a prompt, or a trajectory segment."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    prompt = models.TextField(blank=True)
    text = models.TextField(blank=True)
    prompt_messages = models.JSONField(
        null=True,
        blank=True,
        help_text="A conversation's prompt as chat messages [{role, content}] "
        "(labeling/conversations.py); prompt then holds it flattened. Null for plain text.",
    )
    messages = models.JSONField(
        null=True,
        blank=True,
        help_text="A conversation's candidate as assistant messages; text then holds the "
        "final message's content. Null for plain text.",
    )
    clip = models.FileField(upload_to="clips/%Y/%m/", blank=True)
    poster = models.FileField(upload_to="posters/%Y/%m/", blank=True)
    payload = models.FileField(
        upload_to="segments/%Y/%m/",
        blank=True,
        help_text="A trajectory segment's observations and actions (.npz), for training.",
    )
    data = models.JSONField(
        default=dict,
        blank=True,
        help_text="Provenance: policy version, seed, true return, ...",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"item {self.pk}"


class Comparison(models.Model):
    """2..K items of one project to be ordered; K = 2 is a pair, K > 2 a ranking task."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"
        CLOSED = "closed", "Closed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons")
    items = models.ManyToManyField(Item, through="ComparisonItem", related_name="comparisons")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    gold_ranking = models.JSONField(
        null=True,
        blank=True,
        help_text="Gold answer: item ids best first, or the string 'tie' for a pair.",
    )
    judgement_count = models.PositiveIntegerField(
        default=0, help_text="Judgements other than skips; kept under the row lock."
    )
    open_leases = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Leases with status open (expired or not); kept by a database trigger.",
    )
    data = models.JSONField(default=dict, blank=True)
    import_key = models.CharField(
        max_length=64,
        blank=True,
        default="",
        editable=False,
        help_text="SHA-256 of the imported line's content; a line is stored once per project.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "status", "id"], name="comparison_queue")]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "import_key"],
                condition=~Q(import_key=""),
                name="comparison_import_once",
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk}"

    @property
    def is_gold(self) -> bool:
        return self.gold_ranking is not None


class ComparisonItem(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="slots")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="slots")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["comparison", "position"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "position"], name="slot_position"),
            models.UniqueConstraint(fields=["comparison", "item"], name="slot_item"),
        ]

    def __str__(self) -> str:
        return f"{self.comparison} #{self.position}: {self.item}"


class Assignment(models.Model):
    """A lease of a comparison to an annotator, with the order its items are shown in."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        RELEASED = "released", "Released"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = (
        models.ForeignKey(  # assignment_one_per_annotator leads with it: no index of its own
            settings.AUTH_USER_MODEL,
            on_delete=models.CASCADE,
            related_name="assignments",
            db_index=False,
        )
    )
    display_order = models.JSONField(help_text="Item ids in the order this annotator sees them.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "comparison"], name="assignment_one_per_annotator"
            ),
            models.UniqueConstraint(
                fields=["annotator", "project"],
                condition=Q(status="open"),
                name="assignment_one_open_lease",
            ),
        ]
        indexes = [
            models.Index(
                fields=["comparison", "expires_at"],
                condition=Q(status="open"),
                name="assignment_open_by_comparison",
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(status="open"),
                name="assignment_open_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} holds {self.comparison}"


class Judgement(models.Model):
    """One annotator's answer to one comparison, with the item ids it ranks."""

    class Choice(models.TextChoices):
        LEFT = "left", "Left"
        RIGHT = "right", "Right"
        TIE = "tie", "Tie"
        SKIP = "skip", "Skip"
        RANKING = "ranking", "Ranking"
        BOTH_BAD = "both_bad", "Both bad"

    class Strength(models.TextChoices):
        SLIGHT = "slight", "Slightly better"
        CLEAR = "clear", "Clearly better"
        STRONG = "strong", "Much better"

    class Source(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        IMPORT = "import", "Imported"

    # Indexes cost every judgement an insert each: project_id and annotator_id are the
    # leading columns of judgement_by_project and judgement_one_per_annotator, which serve
    # their lookups (and the cascade and protect checks), so they have none of their own.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="judgements", db_index=False
    )
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgements")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="judgements",
        db_index=False,
    )
    choice = models.CharField(max_length=10, choices=Choice.choices)
    ranking = models.JSONField(
        null=True,
        blank=True,
        help_text="Item ids best first; empty for a tie, a skip or both_bad.",
    )
    shown_order = models.JSONField(help_text="Item ids in the order the annotator saw them.")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ANNOTATOR)
    # The project's feedback form (config "feedback") may ask for more than the choice:
    strength = models.CharField(
        max_length=10,
        choices=Strength.choices,
        blank=True,
        default="",
        db_default="",  # the judging SQL inserts rows without naming every column
        help_text="How much better the winner of a pair is; empty when not given.",
    )
    ratings = models.JSONField(
        null=True,
        blank=True,
        help_text='Per item id, its rating 1..7 on each criterion: {"12": {"overall": 5}}.',
    )
    critique = models.TextField(blank=True, default="", db_default="")
    edit = models.ForeignKey(
        Item,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,  # judgement_edits: only the judgements that have one
        related_name="edit_of_judgements",
        help_text="The annotator's improved version of the winner: an item of its own "
        "(in no comparison), ranked above the winner in training and export.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revised_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the annotator last changed this answer (its earlier ones are in "
        "the revisions); empty if never.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "comparison"], name="judgement_one_per_annotator"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "created_at"], name="judgement_by_project"),
            # The stats cache asks for a project's newest revision on every read.
            models.Index(
                fields=["project", "revised_at"],
                condition=Q(revised_at__isnull=False),
                name="judgement_revised",
            ),
            # SET NULL when an edit's item is deleted; most judgements have no edit.
            models.Index(fields=["edit"], condition=Q(edit__isnull=False), name="judgement_edits"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.comparison}: {self.choice}"


class JudgementRevision(models.Model):
    """An answer that its annotator replaced: what the judgement said until ``revised_at``."""

    judgement = models.ForeignKey(Judgement, on_delete=models.CASCADE, related_name="revisions")
    choice = models.CharField(max_length=10, choices=Judgement.Choice.choices)
    ranking = models.JSONField(null=True, blank=True, help_text="Item ids best first.")
    shown_order = models.JSONField(help_text="Item ids in the order the annotator saw them.")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    feedback = models.JSONField(
        default=dict,
        blank=True,
        help_text="The rest of the replaced answer: strength, ratings, critique, edit (item id).",
    )
    answered_at = models.DateTimeField(
        help_text="When this answer was given (the judgement's creation or an earlier revision)."
    )
    revised_at = models.DateTimeField(help_text="When the annotator replaced it.")

    class Meta:
        ordering = ["judgement", "revised_at"]

    def __str__(self) -> str:
        return f"judgement {self.judgement_id} was {self.choice} until {self.revised_at}"


class ImportJob(models.Model):
    """A JSONL import: run in the request for a small file, by a worker for a large one
    (its upload kept in storage until then). A client's ``Idempotency-Key`` names it, so a
    retried request gets the first one's job rather than a second import."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    importer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="import_jobs"
    )
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    upload = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1: the share of lines read.")
    attempts = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(
        default=dict, blank=True, help_text="created_items, ..., skipped_duplicates."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "importer", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="import_job_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"import {self.pk} into {self.project}: {self.status}"


class Webhook(models.Model):
    """A URL that receives a project's events as signed POSTs (Standard Webhooks); created
    and deleted by labeling.webhooks, which keeps ``Project.has_webhooks``."""

    class Event(models.TextChoices):
        JUDGEMENT_CREATED = "judgement.created", "A judgement was stored"
        ROUND_FINISHED = "round.finished", "A training round succeeded or failed"
        ARENA_FINISHED = "arena.finished", "An arena finished"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    events = models.JSONField(help_text="The event names it receives (Webhook.Event).")
    secret = models.CharField(
        max_length=200, help_text="whsec_ and the base64 of the HMAC-SHA256 key."
    )
    active = models.BooleanField(
        default=True, help_text="An inactive webhook is sent nothing until it is active again."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhooks",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.project}: {self.url}"


class WebhookDelivery(models.Model):
    """One event sent to one webhook: its body, and how its attempts went. Its id is the
    ``webhook-id`` header, the same on every attempt, so a receiver can drop repeats."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=50, choices=Webhook.Event.choices)
    event_id = models.UUIDField(
        help_text="The event's id: one event sent to several webhooks has one id."
    )
    payload = models.JSONField(help_text="The body sent: {type, timestamp, data}.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["webhook", "-id"], name="webhook_delivery_newest")]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.event} to webhook {self.webhook_id}: {self.status}"
