"""Judgements as training data: the pairs they order, with how strongly, and the ratings
they give. Every trainer and the preference exports read them from here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from labeling import qualification
from labeling.models import Item, Judgement, Project

P_BETTER = 1.0  # P[a ≻ b] when a is ranked above b
P_TIE = 0.5
NO_PREFERENCE = (Judgement.Choice.SKIP, Judgement.Choice.BOTH_BAD)


@dataclass(frozen=True)
class Preference:
    """One judged pair: P[item a ≻ item b] = ``p`` (1 when a was ranked above b, ½ for
    a tie), said by ``annotator_id`` in judgement ``judgement_id``. ``strength`` is the
    judgement's (slight, clear, strong; "" when not given); ``edit`` marks a pair whose
    better item is the annotator's edit of the winner (edit ≻ winner ≻ the rest)."""

    a_id: int
    b_id: int
    p: float
    annotator_id: int
    judgement_id: int
    strength: str = ""
    edit: bool = False


def _judgements(project: Project, *, comparison_ids=None):
    """The project's judgements that are training data: not of unqualified members."""
    judgements = Judgement.objects.filter(project=project)
    if unqualified := qualification.unqualified_annotators(project):
        judgements = judgements.exclude(annotator_id__in=unqualified)
    if comparison_ids is not None:
        judgements = judgements.filter(comparison_id__in=list(comparison_ids))
    return judgements


def preferences(
    project: Project, *, ties: bool = True, comparison_ids: Iterable[int] | None = None
) -> list[Preference]:
    """Every judged pair of ``project`` (or of ``comparison_ids`` only), oldest judgement
    first. A ranking of K items gives its C(K, 2) pairs (better first, p = 1); a tie gives
    (shown first, shown second, ½) unless ``ties`` is False; skips and both_bad give
    nothing. A judgement with an edit first gives (edit, x) for every ranked x: the edit
    is ranked above the winner. Judgements of gold comparisons count as any other; the
    gold answer itself is no preference. Pairs with an item that no longer exists are left
    out, and so are the judgements of members who have not qualified
    (labeling/qualification.py)."""
    judgements = _judgements(project, comparison_ids=comparison_ids).exclude(
        choice__in=NO_PREFERENCE
    )
    if not ties:
        judgements = judgements.exclude(choice=Judgement.Choice.TIE)
    rows = judgements.order_by("pk").values_list(
        "pk", "annotator_id", "choice", "ranking", "shown_order", "strength", "edit_id"
    )
    existing = set(Item.objects.filter(project=project).values_list("pk", flat=True))
    found = []
    for judgement_id, annotator_id, choice, ranking, shown, strength, edit_id in rows:
        if choice == Judgement.Choice.TIE:
            pairs = [(shown[0], shown[1], P_TIE, False)]
        else:
            ranked = ranking or []
            edited = [(edit_id, b, P_BETTER, True) for b in ranked] if edit_id else []
            pairs = edited + [(a, b, P_BETTER, False) for a, b in combinations(ranked, 2)]
        found.extend(
            Preference(a, b, p, annotator_id, judgement_id, strength, edit)
            for a, b, p, edit in pairs
            if a in existing and b in existing
        )
    return found


@dataclass(frozen=True)
class Rating:
    """One rating: ``item_id`` rated ``value`` (1..7) on ``criterion`` by ``annotator_id``
    in judgement ``judgement_id``."""

    item_id: int
    criterion: str
    value: int
    annotator_id: int
    judgement_id: int


def ratings(project: Project, *, comparison_ids: Iterable[int] | None = None) -> list[Rating]:
    """Every rating of ``project``'s judgements (skips included: a rating says something
    of its item whatever the choice), oldest judgement first, items that no longer exist
    and unqualified members left out."""
    rows = (
        _judgements(project, comparison_ids=comparison_ids)
        .exclude(ratings=None)
        .order_by("pk")
        .values_list("pk", "annotator_id", "ratings")
    )
    existing = set(Item.objects.filter(project=project).values_list("pk", flat=True))
    return [
        Rating(int(item), criterion, int(value), annotator_id, judgement_id)
        for judgement_id, annotator_id, given in rows
        for item, by_criterion in given.items()
        if int(item) in existing
        for criterion, value in by_criterion.items()
    ]


def both_bad_count(project: Project) -> int:
    """Judgements that found every candidate bad: counted, not used as preferences."""
    return _judgements(project).filter(choice=Judgement.Choice.BOTH_BAD).count()


DESIRABLE_AT = 5  # a weighted rating at or above this is a desirable completion (KTO)
UNDESIRABLE_AT = 3  # at or below this an undesirable one; between, neither


@dataclass(frozen=True)
class Verdict:
    """One completion judged good or bad on its own (KTO's data): ``item_id`` is
    ``desirable`` or not, by ``annotator_id`` in judgement ``judgement_id``; ``source`` is
    "rating", "choice" or "edit"."""

    item_id: int
    desirable: bool
    annotator_id: int
    judgement_id: int
    source: str


def verdicts(
    project: Project,
    *,
    criteria: list[tuple[str, float]],
    desirable_at: float = DESIRABLE_AT,
    undesirable_at: float = UNDESIRABLE_AT,
) -> list[Verdict]:
    """Each judgement's completions as desirable or undesirable, oldest judgement first.

    Where a judgement rated its items, the ratings decide: an item's weighted mean over
    ``criteria`` ((name, weight) pairs) at or above ``desirable_at`` is desirable, at or
    below ``undesirable_at`` undesirable, else left out. A judgement without ratings
    gives thumbs from its choice: the winner desirable, the last of its ranking
    undesirable; both_bad makes every item undesirable; ties and skips give nothing. An
    edit of the winner is desirable either way (``source`` "edit"). Items that no longer
    exist and unqualified members are left out."""
    weights = dict(criteria)
    total = sum(weights.values())
    rows = (
        _judgements(project)
        .exclude(choice=Judgement.Choice.SKIP, ratings=None)
        .order_by("pk")
        .values_list("pk", "annotator_id", "choice", "ranking", "shown_order", "ratings", "edit_id")
    )
    existing = set(Item.objects.filter(project=project).values_list("pk", flat=True))
    found = []
    for judgement_id, annotator_id, choice, ranking, shown, given, edit_id in rows:
        if edit_id:  # the annotator's own improvement of the winner
            found.append(Verdict(edit_id, True, annotator_id, judgement_id, "edit"))
        if given:
            for item, by_criterion in given.items():
                score = sum(weights.get(c, 0.0) * v for c, v in by_criterion.items()) / total
                if score >= desirable_at or score <= undesirable_at:
                    found.append(
                        Verdict(
                            int(item), score >= desirable_at, annotator_id, judgement_id, "rating"
                        )
                    )
        elif choice == Judgement.Choice.BOTH_BAD:
            found.extend(Verdict(pk, False, annotator_id, judgement_id, "choice") for pk in shown)
        elif ranking:
            found.append(Verdict(ranking[0], True, annotator_id, judgement_id, "choice"))
            found.append(Verdict(ranking[-1], False, annotator_id, judgement_id, "choice"))
    return [v for v in found if v.item_id in existing]
