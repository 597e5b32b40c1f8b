"""What the text reward model trains on: each judgement as one comparison group of its
choice's pairs, with their strength margins, and of the pairs its ratings order per
criterion (training/ml/lm/lm_reward.py).

- A choice or ranking gives its pairs (labeling.preferences) for the weighted sum r_θ =
  Σ_c w_c r_c, each with the margin m(strength) of its judgement (config.strength_margins,
  training.kinds.config.strength_margin); a tie, a pair without a strength and an edit's
  pairs (edit ≻ x: the strength compared the candidates, not the edit) have margin 0.
- Ratings on criterion c give, among the judgement's rated items, the pair (higher ≻
  lower) for every two items rated differently, and a tie (p = ½) for two rated the same:
  on an absolute 1–7 scale "the same" is a statement about c, unlike a forced choice's
  tie, and fitting it keeps head r_c from inventing an order the annotator did not see.
  These pairs train head r_c alone, with margin 0. Ratings on a criterion the project no
  longer has are left out.
"""

from __future__ import annotations

from itertools import combinations, groupby

from labeling.feedback import criteria_of
from labeling.models import Item, Project
from labeling.preferences import P_BETTER, P_TIE, Preference, Rating, preferences, ratings
from training.kinds.config import TextConfig, strength_margin
from training.kinds.text_items import item_texts, shared_context
from training.ml.lm.lm_reward import ComparisonGroup


def criteria(config: TextConfig) -> list[tuple[str, float]]:
    """The project's (criterion, weight) pairs: one reward head each."""
    return criteria_of({"criteria": config.criteria})


def rating_pairs(rated: list[Rating], names: list[str]) -> list[tuple[int, int, float, str]]:
    """(item a, item b, P[a ≻ b], criterion) of one judgement's ratings: per criterion of
    ``names``, in their order, every two items it rated, the higher first (½ when rated
    the same)."""
    by_criterion: dict[str, dict[int, int]] = {name: {} for name in names}
    for rating in rated:
        if rating.criterion in by_criterion:
            by_criterion[rating.criterion][rating.item_id] = rating.value
    pairs = []
    for criterion, values in by_criterion.items():
        for a, b in combinations(sorted(values), 2):
            if values[a] == values[b]:
                pairs.append((a, b, P_TIE, criterion))
            else:
                better, worse = (a, b) if values[a] > values[b] else (b, a)
                pairs.append((better, worse, P_BETTER, criterion))
    return pairs


def judged_groups(
    project: Project, tokenizer, config: TextConfig
) -> list[tuple[ComparisonGroup, list[Preference]]]:
    """One group per judgement with a preference or a rating, oldest first, each with the
    preferences its first pairs come from (its rating pairs follow them). A conversation's
    context is rendered for ``tokenizer`` (text_items.item_texts, shared_context)."""
    names = [name for name, _ in criteria(config)]
    prefs = {j: list(p) for j, p in groupby(preferences(project), lambda p: p.judgement_id)}
    rated = {j: list(r) for j, r in groupby(ratings(project), lambda r: r.judgement_id)}
    by_judgement = {j: rating_pairs(rated[j], names) for j in rated}
    ids = {pk for judged in prefs.values() for p in judged for pk in (p.a_id, p.b_id)}
    ids |= {pk for pairs in by_judgement.values() for a, b, _, _ in pairs for pk in (a, b)}
    items = Item.objects.filter(pk__in=ids).only(
        "pk", "prompt", "text", "prompt_messages", "messages"
    )
    texts = {item.pk: item_texts(item, tokenizer) for item in items}
    groups = []
    for judgement_id in sorted(set(prefs) | set(by_judgement)):
        judged = prefs.get(judgement_id, [])
        from_ratings = [
            pair
            for pair in by_judgement.get(judgement_id, [])
            if pair[0] in texts and pair[1] in texts
        ]
        pairs = [(p.a_id, p.b_id, p.p, None) for p in judged] + from_ratings
        if not pairs:
            continue
        members = list(dict.fromkeys(pk for a, b, _, _ in pairs for pk in (a, b)))
        context, responses = shared_context([texts[pk] for pk in members])
        margins = [0.0 if p.edit else strength_margin(config, p.strength, p.p) for p in judged]
        annotator = judged[0].annotator_id if judged else rated[judgement_id][0].annotator_id
        group = ComparisonGroup(
            prompt=context,
            responses=tuple(responses),
            pairs=tuple((members.index(a), members.index(b)) for a, b, _, _ in pairs),
            p_first=tuple(p for _, _, p, _ in pairs),
            annotator=annotator,
            margins=tuple(margins + [0.0] * len(from_ratings)),
            heads=tuple(head for _, _, _, head in pairs),
        )
        groups.append((group, judged))
    return groups
