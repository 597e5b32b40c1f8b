"""Writes that set a project up: the project, its members, its comparisons."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from core.errors import InvalidInput
from labeling.config import validate_project_config
from labeling.models import Comparison, ComparisonItem, Item, Membership, Project


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
    """Create a project with a validated config (defaults filled in). A slug taken, even
    by a request that won a race for it a moment ago, is InvalidInput."""
    validated = validate_project_config(kind, config or {})
    try:
        with transaction.atomic():
            return Project.objects.create(
                slug=slug,
                name=name,
                kind=kind,
                instructions=instructions,
                overlap=overlap,
                round_size=round_size,
                gold_rate=gold_rate,
                lease_seconds=lease_seconds,
                config=validated,
            )
    except IntegrityError:
        if Project.objects.filter(slug=slug).exists():
            raise InvalidInput(f"A project with slug {slug!r} exists.") from None
        raise


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
