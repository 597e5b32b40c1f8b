"""Project statistics: agreement with the majority of the others, and gold accuracy."""

from labeling import services
from labeling import stats as labeling_stats
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
    stats = labeling_stats.project_stats(project, for_user=make_user(staff=True))
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
    staff_view = labeling_stats.project_stats(project, for_user=make_user(staff=True))
    rows = {r["annotator"]: r for r in staff_view["annotators"]}
    assert rows["right"]["gold_accuracy"] == 1.0 and rows["right"]["gold_judged"] == 3
    assert rows["wrong"]["gold_accuracy"] == 0.0
    own_view = labeling_stats.project_stats(project, for_user=right)
    assert [r["annotator"] for r in own_view["annotators"]] == ["right"]
    # Gold stays invisible to annotators: no gold figures that an answer would move.
    (own,) = own_view["annotators"]
    assert own["gold_accuracy"] is None and own["gold_judged"] is None
    assert own["judgements"] == 3


def _reference_agreement(judgements):
    """The agreement figures as the platform first computed them, in Python: per annotator
    (compared, agree) over comparisons with two or more non-skip answers."""
    from collections import Counter, defaultdict

    by_comparison = defaultdict(list)
    for j in judgements:
        outcome = "tie" if j.choice == "tie" else (j.ranking[0] if j.ranking else None)
        if outcome is not None and j.comparison.gold_ranking is None:
            by_comparison[j.comparison_id].append((j.annotator.username, outcome))
    figures = defaultdict(lambda: [0, 0])
    for answers in by_comparison.values():
        if len(answers) < 2:
            continue
        for name, outcome in answers:
            others = Counter(o for n, o in answers if n != name).most_common(2)
            if len(others) == 2 and others[0][1] == others[1][1]:
                continue
            figures[name][0] += 1
            figures[name][1] += int(outcome == others[0][0])
    return {name: tuple(v) for name, v in figures.items()}


def test_the_sql_agreement_matches_the_python_definition_on_random_answers(
    make_user, make_project, make_comparison
):
    import random

    from labeling.models import Judgement

    rng = random.Random(7)
    users = [make_user(f"u{i}") for i in range(5)]
    project = make_project(members=users, overlap=5)
    for k in (2, 2, 2, 3, 3, 2, 4, 2):
        make_comparison(project, k=k)

    def answer(lease):
        order = list(lease.display_order)
        if len(order) == 2:
            return {"choice": rng.choice(["left", "right", "right", "tie", "skip"])}
        if rng.random() < 0.2:
            return {"choice": "skip"}
        rng.shuffle(order)
        return {"ranking": order}

    for user in users:
        while lease := services.assign_next_comparison(annotator=user, project=project):
            services.record_judgement(annotator=user, comparison=lease.comparison, **answer(lease))

    found = labeling_stats.project_stats(project, for_user=make_user(staff=True))
    judgements = Judgement.objects.filter(project=project).select_related("comparison", "annotator")
    expected = _reference_agreement(judgements)
    for row in found["annotators"]:
        compared, agree = expected.get(row["annotator"], (0, 0))
        assert row["agreement_comparisons"] == compared
        assert row["agreement_with_majority"] == (agree / compared if compared else None)
    assert sum(row["agreement_comparisons"] for row in found["annotators"]) > 5


def test_a_new_judgement_shows_in_the_stats_at_once(make_user, make_project, make_comparison):
    user, staff = make_user(), make_user(staff=True)
    project = make_project(members=[user])
    make_comparison(project)
    make_comparison(project)
    assert labeling_stats.project_stats(project, for_user=staff)["judgements"] == 0
    lease = services.assign_next_comparison(annotator=user, project=project)
    services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")
    (row,) = labeling_stats.project_stats(project, for_user=staff)["annotators"]
    assert row["judgements"] == 1
