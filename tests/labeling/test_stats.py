"""Project statistics: agreement with the majority of the others, and gold accuracy."""

from labeling import selectors, services
from labeling.models import Comparison


def _judge_all(project, answers):
    """answers: {user: function(display_order) -> choice}; each judges every comparison."""
    for user, pick in answers.items():
        while (
            lease := services.assign_next_comparison(annotator=user, project=project)
        ) is not None:
            services.record_judgement(
                annotator=user, comparison=lease.comparison, choice=pick(lease)
            )


def test_agreement_counts_each_annotator_against_the_others_majority(
    make_user, make_project, make_comparison
):
    a, b, c = make_user("a"), make_user("b"), make_user("c")
    project = make_project(members=[a, b, c], overlap=3)
    first_items = [make_comparison(project).slots.get(position=0).item_id for _ in range(4)]

    def prefer_first(lease):
        return "left" if lease.display_order[0] in first_items else "right"

    def prefer_second(lease):
        return "right" if lease.display_order[0] in first_items else "left"

    _judge_all(project, {a: prefer_first, b: prefer_first, c: prefer_second})
    stats = selectors.project_stats(project, for_user=make_user(staff=True))
    rows = {r["annotator"]: r for r in stats["annotators"]}
    # a's others are b (first) and c (second): split evenly, so left out for a and b
    assert rows["a"]["agreement_comparisons"] == 0 and rows["b"]["agreement_comparisons"] == 0
    # c's others (a, b) agree with each other and disagree with c on all four
    assert rows["c"]["agreement_comparisons"] == 4
    assert rows["c"]["agreement_with_majority"] == 0.0
    assert stats["comparisons_complete"] == 4 and stats["judgements"] == 12


def test_gold_accuracy_and_annotators_see_only_their_own_row(
    make_user, make_project, make_comparison
):
    right, wrong = make_user("right"), make_user("wrong")
    project = make_project(members=[right, wrong], overlap=2, gold_rate=1.0)
    golds = []
    for _ in range(3):
        comparison = make_comparison(project)
        best = comparison.slots.get(position=1).item_id
        Comparison.objects.filter(pk=comparison.pk).update(
            gold_ranking=[best, comparison.slots.get(position=0).item_id]
        )
        golds.append(best)

    def correct(lease):
        return "left" if lease.display_order[0] in golds else "right"

    def incorrect(lease):
        return "right" if lease.display_order[0] in golds else "left"

    _judge_all(project, {right: correct, wrong: incorrect})
    staff_view = selectors.project_stats(project, for_user=make_user(staff=True))
    rows = {r["annotator"]: r for r in staff_view["annotators"]}
    assert rows["right"]["gold_accuracy"] == 1.0 and rows["right"]["gold_judged"] == 3
    assert rows["wrong"]["gold_accuracy"] == 0.0
    own_view = selectors.project_stats(project, for_user=right)
    assert [r["annotator"] for r in own_view["annotators"]] == ["right"]
    # Gold stays invisible to annotators: no gold figures that an answer would move.
    (own,) = own_view["annotators"]
    assert own["gold_accuracy"] is None and own["gold_judged"] is None
    assert own["judgements"] == 3
