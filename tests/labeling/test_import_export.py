"""JSONL import (all or nothing) and export in TRL's format and in full."""

from __future__ import annotations

import json
from itertools import combinations

import pytest

from core.errors import ImportRejected, InvalidInput
from labeling import imports, selectors, services
from labeling.models import Comparison, Item, Judgement


def _jsonl(*rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_import_creates_pairs_rankings_and_prejudged_pairs(make_user, make_project):
    staff = make_user(staff=True)
    project = make_project()
    result = imports.import_jsonl(
        project=project,
        importer=staff,
        data=_jsonl(
            {"prompt": "p1", "responses": ["a", "b"]},
            {"prompt": "p2", "responses": ["c", "d", "e"]},
            {"prompt": "p3", "chosen": "good", "rejected": "bad"},
        ),
    )
    assert (result.created_items, result.created_comparisons, result.created_judgements) == (
        7,
        3,
        1,
    )
    ranking = Comparison.objects.get(items__text="c")
    assert list(ranking.slots.values_list("item__text", flat=True)) == ["c", "d", "e"]
    prejudged = Comparison.objects.get(items__text="good")
    assert prejudged.status == "closed"  # not queued for annotators
    judgement = Judgement.objects.get(comparison=prejudged)
    assert [Item.objects.get(pk=pk).text for pk in judgement.ranking] == ["good", "bad"]
    assert judgement.annotator == staff and judgement.source == "import"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"prompt": "p", "responses": ["only one"]}', "'responses' must be a list of 2 to"),
        (b'{"prompt": "", "responses": ["a", "b"]}', "'prompt' must be a non-empty string"),
        (b'{"prompt": "p", "responses": ["a", 3]}', "responses[1] must be a non-empty string"),
        (b'{"prompt": "p", "chosen": "a"}', "'rejected' must be a non-empty string"),
        (b'["a", "b"]', "each line must be a JSON object"),
        (b'{"prompt": "p", "responses": ["a", "b"], "x": 1}', "unexpected keys"),
        (b'{"prompt": "p", "responses": ["\xff\xfe", "b"]}', "not valid UTF-8"),
    ],
)
def test_a_bad_line_names_its_number_and_nothing_is_stored(
    make_user, make_project, bad_line, message
):
    project = make_project()
    good = _jsonl(
        {"prompt": "p", "responses": ["a", "b"]}, {"prompt": "q", "responses": ["c", "d"]}
    )
    data = good + b"\n\n" + bad_line + b"\n"
    with pytest.raises(ImportRejected) as caught:
        imports.import_jsonl(project=project, data=data, importer=make_user(staff=True))
    assert caught.value.line == 4  # two good lines, a blank line, then the bad one
    assert "line 4:" in caught.value.message and message in caught.value.message
    assert not Item.objects.exists() and not Comparison.objects.exists()


def test_import_into_a_trajectory_project_is_refused(make_user, make_project):
    project = make_project(kind="trajectory")
    with pytest.raises(InvalidInput, match="text projects"):
        imports.import_jsonl(
            project=project, data=_jsonl({"prompt": "p", "responses": ["a", "b"]}), importer=None
        )


def _judge(user, project, **answer):
    lease = services.assign_next_comparison(annotator=user, project=project)
    return services.record_judgement(annotator=user, comparison=lease.comparison, **answer)


def test_trl_export_expands_rankings_and_leaves_out_ties_and_skips(make_user, make_project):
    users = [make_user() for _ in range(3)]
    project = make_project(members=users, overlap=3)
    imports.import_jsonl(
        project=project,
        importer=make_user(staff=True),
        data=_jsonl({"prompt": "rank these", "responses": ["w", "x", "y", "z"]}),
    )
    lease = services.assign_next_comparison(annotator=users[0], project=project)
    by_text = {i.text: i.pk for i in Item.objects.all()}
    order = [by_text[t] for t in ["y", "w", "z", "x"]]
    ranked = services.record_judgement(
        annotator=users[0], comparison=lease.comparison, ranking=order
    )
    _judge(users[1], project, choice="skip")
    rows = list(selectors.export_trl(project))
    expected = [
        {"prompt": "rank these", "chosen": a, "rejected": b}
        for a, b in combinations(["y", "w", "z", "x"], 2)
    ]
    assert rows == expected  # C(4, 2) = 6 pairs, best-first order kept
    assert ranked.created


def test_trl_export_of_pairs_uses_item_ids_not_screen_order(make_user, make_project):
    users = [make_user() for _ in range(30)]
    project = make_project(members=users, overlap=30)
    imports.import_jsonl(
        project=project,
        importer=make_user(staff=True),
        data=_jsonl({"prompt": "p", "responses": ["better", "worse"]}),
    )
    better = Item.objects.get(text="better").pk
    for user in users:
        lease = services.assign_next_comparison(annotator=user, project=project)
        choice = "left" if lease.display_order[0] == better else "right"
        services.record_judgement(annotator=user, comparison=lease.comparison, choice=choice)
    shown_left = {tuple(j.shown_order) for j in Judgement.objects.all()}
    assert len(shown_left) == 2  # both screen orders happened
    rows = list(selectors.export_trl(project))
    assert rows == [{"prompt": "p", "chosen": "better", "rejected": "worse"}] * 30


def test_full_export_has_one_line_per_judgement_with_annotator_choice_and_time(
    make_user, make_project
):
    user = make_user("ann")
    project = make_project(members=[user])
    imports.import_jsonl(
        project=project,
        importer=make_user(staff=True),
        data=_jsonl({"prompt": "p", "responses": ["a", "b"]}),
    )
    lease = services.assign_next_comparison(annotator=user, project=project)
    services.record_judgement(
        annotator=user, comparison=lease.comparison, choice="tie", time_spent_ms=4321
    )
    (row,) = selectors.export_full(project)
    assert row["annotator"] == "ann" and row["choice"] == "tie" and row["ranking"] is None
    assert row["time_spent_ms"] == 4321
    assert [i["text"] for i in row["items"]] == [
        Item.objects.get(pk=pk).text for pk in lease.display_order
    ]
    assert list(selectors.export_trl(project)) == []  # a tie gives no TRL pair
