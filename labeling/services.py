"""Every write of the labeling app. Each public function is one transaction."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.config import validate_project_config
from labeling.errors import Conflict, InvalidInput, NotAllowed
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    Item,
    Judgement,
    Membership,
    Project,
)
from labeling.selectors import active_lease_count
from labeling.signals import judgement_recorded

PAIR_CHOICES = {"left", "right", "tie", "skip"}


# --- projects --------------------------------------------------------------------------------
def create_project(
    *,
    slug: str,
    name: str,
    kind: str = Project.Kind.TEXT,
    instructions: str = "",
    overlap: int = 1,
    round_size: int = 100,
    gold_rate: float = 0.0,
    lease_seconds: int = 600,
    config: dict | None = None,
) -> Project:
    """Create a project with a validated config (defaults filled in)."""
    return Project.objects.create(
        slug=slug,
        name=name,
        kind=kind,
        instructions=instructions,
        overlap=overlap,
        round_size=round_size,
        gold_rate=gold_rate,
        lease_seconds=lease_seconds,
        config=validate_project_config(kind, config or {}),
    )


def add_member(*, project: Project, user: AbstractBaseUser) -> Membership:
    """Make ``user`` an annotator of ``project``; adding twice is a no-op."""
    membership, _ = Membership.objects.get_or_create(project=project, user=user)
    return membership


def create_comparison(
    *,
    project: Project,
    items: Sequence[Item],
    gold_ranking: list[int] | str | None = None,
    data: dict | None = None,
) -> Comparison:
    """A comparison of ``items`` in the given order (2..K distinct items of ``project``)."""
    if len(items) < 2:
        raise InvalidInput("A comparison needs at least two items.")
    if len({item.pk for item in items}) != len(items):
        raise InvalidInput("A comparison's items must be distinct.")
    comparison = Comparison.objects.create(
        project=project, gold_ranking=gold_ranking, data=data or {}
    )
    ComparisonItem.objects.bulk_create(
        ComparisonItem(comparison=comparison, item=item, position=i) for i, item in enumerate(items)
    )
    return comparison


# --- assignment ------------------------------------------------------------------------------
def assign_next_comparison(
    *, annotator: AbstractBaseUser, project: Project, rng: random.Random | None = None
) -> Assignment | None:
    """Lease one comparison this annotator has not judged and that still needs judgements.

    The annotator's own open lease is returned again if they hold one. Otherwise a
    comparison is chosen whose judgements plus open leases are below ``overlap``; gold
    comparisons (which every annotator sees once, outside ``overlap``) are mixed in at
    ``project.gold_rate``. Candidate rows are locked with SKIP LOCKED and their counts are
    re-read under the lock, so concurrent callers never over-assign; a caller that finds
    every candidate locked by others waits briefly and looks again rather than being told
    that nothing is left. Returns None when nothing is left for this annotator.
    """
    if not Membership.objects.filter(project=project, user=annotator).exists():
        raise NotAllowed(f"You are not an annotator of project {project.slug!r}.")
    rng = rng or random
    want_gold = project.gold_rate > 0 and rng.random() < project.gold_rate
    order = (True, False) if want_gold else (False, True)
    deadline = time.monotonic() + ASSIGN_PATIENCE_SECONDS
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                lease = _current_lease(annotator=annotator, project=project, now=now)
                if lease is not None:
                    return lease
                for gold, held_before in _PASSES[order]:
                    candidates = _candidates(
                        annotator=annotator,
                        project=project,
                        gold=gold,
                        now=now,
                        held_before=held_before,
                    )
                    comparison = _lock_first_with_room(
                        candidates, project=project, gold=gold, now=now
                    )
                    if comparison is not None:
                        return _lease(
                            annotator=annotator,
                            project=project,
                            comparison=comparison,
                            now=now,
                            rng=rng,
                        )
                busy = any(
                    _candidates(
                        annotator=annotator, project=project, gold=g, now=now, held_before=h
                    ).exists()
                    for g, h in _PASSES[order]
                )
        except IntegrityError:
            # The same annotator asked twice at once and the other request won; its lease
            # is what the next pass returns.
            busy = True
        if not busy:
            return None
        if time.monotonic() > deadline:
            raise Conflict("Every remaining comparison is being assigned right now; retry.")
        time.sleep(rng.uniform(0.005, 0.03))


# The order in which candidate sets are tried: (gold, held before), by whether gold is
# wanted first. Comparisons never held by this annotator come before ones they let expire.
_PASSES = {
    (True, False): ((True, False), (False, False), (True, True), (False, True)),
    (False, True): ((False, False), (True, False), (False, True), (True, True)),
}

# How long a caller waits for comparisons that other transactions hold locked for a moment.
ASSIGN_PATIENCE_SECONDS = 5.0


def _current_lease(*, annotator, project, now) -> Assignment | None:
    lease = (
        Assignment.objects.select_for_update()
        .filter(annotator=annotator, project=project, status=Assignment.Status.OPEN)
        .first()
    )
    if lease is None:
        return None
    if lease.expires_at > now:
        return lease
    lease.status = Assignment.Status.RELEASED
    lease.save(update_fields=["status"])
    return None


def _candidates(*, annotator, project, gold: bool, now, held_before: bool):
    """Comparisons this annotator may be given, oldest first (not locked). With
    held_before False, only ones they never held; with True, only ones whose lease they
    let expire (offered again once nothing new is left)."""
    judged = Judgement.objects.filter(annotator=annotator, project=project).values("comparison")
    held = Assignment.objects.filter(annotator=annotator, project=project).values("comparison")
    candidates = Comparison.objects.filter(
        project=project, status=Comparison.Status.OPEN, gold_ranking__isnull=not gold
    ).exclude(pk__in=judged)
    candidates = candidates.filter(pk__in=held) if held_before else candidates.exclude(pk__in=held)
    if not gold:
        candidates = candidates.annotate(leased=active_lease_count(now)).filter(
            judgement_count__lt=project.overlap - F("leased")
        )
    return candidates.order_by("pk")


def _lock_first_with_room(candidates, *, project, gold: bool, now) -> Comparison | None:
    """Lock the first candidate nobody else has locked and that still has room."""
    full: list[int] = []
    for _ in range(8):
        comparison = (
            candidates.exclude(pk__in=full)
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if comparison is None or gold:
            return comparison
        # Re-read under the row lock: every lease of this comparison is written while
        # holding this lock, so this count is exact.
        leased = Assignment.objects.filter(
            comparison=comparison, status=Assignment.Status.OPEN, expires_at__gt=now
        ).count()
        comparison.refresh_from_db(fields=["judgement_count", "status"])
        if (
            comparison.status == Comparison.Status.OPEN
            and comparison.judgement_count + leased < project.overlap
        ):
            return comparison
        full.append(comparison.pk)
    return None


def _lease(*, annotator, project, comparison, now, rng) -> Assignment:
    item_ids = list(
        ComparisonItem.objects.filter(comparison=comparison)
        .order_by("position")
        .values_list("item_id", flat=True)
    )
    rng.shuffle(item_ids)  # position bias is real: each annotator sees their own order
    fields = {
        "project": project,
        "display_order": item_ids,
        "status": Assignment.Status.OPEN,
        "expires_at": now + timedelta(seconds=project.lease_seconds),
        "created_at": now,
    }
    # A lease this annotator let expire is renewed in place (one row per annotator and
    # comparison); otherwise a new one. Either runs under the comparison's row lock.
    existing = Assignment.objects.filter(annotator=annotator, comparison=comparison)
    if existing.update(**fields):
        return existing.get()
    return Assignment.objects.create(annotator=annotator, comparison=comparison, **fields)


def release_expired_leases(*, now=None) -> int:
    """Return expired open leases to the pool; returns how many were released."""
    now = now or timezone.now()
    return Assignment.objects.filter(status=Assignment.Status.OPEN, expires_at__lte=now).update(
        status=Assignment.Status.RELEASED
    )


# --- judgements ------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgementResult:
    judgement: Judgement
    created: bool


def record_judgement(
    *,
    annotator: AbstractBaseUser,
    comparison: Comparison,
    choice: str | None = None,
    ranking: list[int] | None = None,
    time_spent_ms: int | None = None,
) -> JudgementResult:
    """Store the annotator's answer to a comparison they hold a lease on.

    ``choice`` is left/right/tie/skip for a pair, in the order the annotator saw the items;
    a K > 2 comparison takes ``ranking`` (its item ids, best first) or ``choice='skip'``.
    Repeating an identical submission returns the stored judgement (created False); a
    different answer to a comparison already judged raises Conflict.
    """
    with transaction.atomic():
        comparison = (
            Comparison.objects.select_for_update(of=("self",))
            .select_related("project")
            .get(pk=comparison.pk)
        )
        lease = Assignment.objects.filter(annotator=annotator, comparison=comparison).first()
        if lease is None:
            raise NotAllowed(
                f"You hold no lease on comparison {comparison.pk}; "
                f"ask for one with POST /api/projects/{comparison.project.slug}/next/."
            )
        choice, resolved = _resolve_answer(
            comparison=comparison,
            shown=lease.display_order,
            choice=choice,
            ranking=ranking,
        )
        existing = Judgement.objects.filter(annotator=annotator, comparison=comparison).first()
        if existing is not None:
            if existing.choice == choice and existing.ranking == resolved:
                return JudgementResult(existing, created=False)
            raise Conflict(
                f"Comparison {comparison.pk} is already judged by you as "
                f"{existing.choice!r}; a judgement cannot be changed."
            )
        now = timezone.now()
        if choice != Judgement.Choice.SKIP and not comparison.is_gold:
            lease_active = lease.status == Assignment.Status.OPEN and lease.expires_at > now
            if not lease_active:
                others = (
                    Assignment.objects.filter(
                        comparison=comparison,
                        status=Assignment.Status.OPEN,
                        expires_at__gt=now,
                    )
                    .exclude(pk=lease.pk)
                    .count()
                )
                if comparison.judgement_count + others >= comparison.project.overlap:
                    raise Conflict(
                        f"Your lease on comparison {comparison.pk} expired and the comparison "
                        "has been given to others; ask for the next one."
                    )
        judgement = Judgement.objects.create(
            project_id=comparison.project_id,
            comparison=comparison,
            annotator=annotator,
            choice=choice,
            ranking=resolved,
            shown_order=lease.display_order,
            time_spent_ms=time_spent_ms,
        )
        lease.status = Assignment.Status.DONE
        lease.save(update_fields=["status"])
        if choice != Judgement.Choice.SKIP and not comparison.is_gold:
            comparison.judgement_count += 1
            if comparison.judgement_count >= comparison.project.overlap:
                comparison.status = Comparison.Status.COMPLETE
            comparison.save(update_fields=["judgement_count", "status"])
        if choice != Judgement.Choice.SKIP:
            transaction.on_commit(
                lambda: judgement_recorded.send_robust(
                    sender=Judgement, project_id=comparison.project_id, judgement_id=judgement.pk
                )
            )
        return JudgementResult(judgement, created=True)


def _resolve_answer(*, comparison, shown, choice, ranking) -> tuple[str, list[int] | None]:
    """Turn screen-relative input into (choice, item ids best first)."""
    k = len(shown)
    if choice is not None and ranking is not None:
        raise InvalidInput("Send either 'choice' or 'ranking', not both.")
    if choice is None and ranking is None:
        raise InvalidInput("Send 'choice' (left, right, tie or skip) or 'ranking'.")
    if choice is not None:
        if choice not in PAIR_CHOICES:
            raise InvalidInput(f"choice must be one of left, right, tie, skip; got {choice!r}.")
        if choice == "skip":
            return "skip", None
        if k != 2:
            raise InvalidInput(
                f"Comparison {comparison.pk} ranks {k} items: send 'ranking' "
                "(its item ids, best first) or choice 'skip'."
            )
        if choice == "tie":
            return "tie", None
        left, right = shown
        return choice, [left, right] if choice == "left" else [right, left]
    if not isinstance(ranking, list) or sorted(ranking) != sorted(shown):
        raise InvalidInput(
            f"ranking must list each of this comparison's item ids {sorted(shown)} once, "
            f"best first; got {ranking!r}."
        )
    return "ranking", list(ranking)


def record_imported_judgement(
    *, importer: AbstractBaseUser, comparison: Comparison, ranking: list[int]
) -> Judgement:
    """An already-made judgement brought in by an import; the importer is its author."""
    return Judgement.objects.create(
        project_id=comparison.project_id,
        comparison=comparison,
        annotator=importer,
        choice=Judgement.Choice.LEFT if len(ranking) == 2 else Judgement.Choice.RANKING,
        ranking=ranking,
        shown_order=ranking,
        source=Judgement.Source.IMPORT,
    )
