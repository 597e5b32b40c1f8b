"""JSONL import (all or nothing, each line once per project, over the API in each content
type it takes) and export in TRL's format and in full."""

from __future__ import annotations

import json
import threading
from itertools import combinations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from core.errors import ImportRejected, InvalidInput
from labeling import exports, imports, services
from labeling.models import Comparison, ImportJob, Item, Judgement


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
    rows = list(exports.export_trl(project))
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
    rows = list(exports.export_trl(project))
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
    (row,) = exports.export_full(project)
    assert row["annotator"] == "ann" and row["choice"] == "tie" and row["ranking"] is None
    assert row["time_spent_ms"] == 4321
    assert [i["text"] for i in row["items"]] == [
        Item.objects.get(pk=pk).text for pk in lease.display_order
    ]
    assert list(exports.export_trl(project)) == []  # a tie gives no TRL pair


# --- import over the API: content types, duplicates ------------------------------------------
PAIRS_FILE = _jsonl(
    {"prompt": "p1", "responses": ["a", "b"]},
    {"prompt": "p2", "responses": ["c", "d", "e"]},
    {"prompt": "p3", "chosen": "good", "rejected": "bad"},
)


def _rows() -> dict[str, int]:
    return {
        "items": Item.objects.count(),
        "comparisons": Comparison.objects.count(),
        "judgements": Judgement.objects.count(),
    }


def _post_import(client, project, body: bytes, content_type: str):
    return client.post(f"/api/projects/{project.slug}/import/", body, content_type=content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/jsonl",
        "application/x-ndjson",
        "text/plain",
        "application/octet-stream",
        "application/jsonl; charset=utf-8",
    ],
)
def test_import_takes_the_file_as_a_body_of_each_jsonl_content_type(
    make_user, make_project, api_client_for, content_type
):
    project = make_project()

    response = _post_import(
        api_client_for(make_user(staff=True)), project, PAIRS_FILE, content_type
    )

    assert response.status_code == 201, response.json()
    assert response.json() == {
        "job": ImportJob.objects.get().pk,
        "created_items": 7,
        "created_comparisons": 3,
        "created_judgements": 1,
        "skipped_duplicates": 0,
    }
    assert _rows() == {"items": 7, "comparisons": 3, "judgements": 1}


def test_import_takes_the_file_as_the_multipart_field_file(make_user, make_project, api_client_for):
    project = make_project()
    upload = SimpleUploadedFile("pairs.jsonl", PAIRS_FILE, content_type="application/jsonl")

    response = api_client_for(make_user(staff=True)).post(
        f"/api/projects/{project.slug}/import/", {"file": upload}, format="multipart"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["created_comparisons"] == 3
    assert _rows() == {"items": 7, "comparisons": 3, "judgements": 1}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_import_of_another_content_type_is_415_naming_the_accepted_ones(
    make_user, make_project, api_client_for, content_type
):
    project = make_project()

    # what `curl --data-binary @pairs.jsonl` sends without a -H 'Content-Type: ...'
    response = _post_import(
        api_client_for(make_user(staff=True)), project, PAIRS_FILE, content_type
    )

    assert response.status_code == 415
    detail = response.json()["detail"]
    assert f"Unsupported media type {content_type!r}" in detail
    for accepted in ("application/jsonl", "application/x-ndjson", "text/plain", "multipart"):
        assert accepted in detail
    assert "-H 'Content-Type: application/jsonl'" in detail and "'file'" in detail
    assert _rows() == {"items": 0, "comparisons": 0, "judgements": 0}


def test_importing_the_same_file_twice_stores_it_once_and_counts_the_skipped_lines(
    make_user, make_project, api_client_for
):
    project = make_project()
    client = api_client_for(make_user(staff=True))
    assert _post_import(client, project, PAIRS_FILE, "application/jsonl").status_code == 201
    before = _rows()

    again = _post_import(client, project, PAIRS_FILE, "application/jsonl")

    assert again.status_code == 200  # nothing new
    assert again.json() == {
        "job": ImportJob.objects.latest("pk").pk,
        "created_items": 0,
        "created_comparisons": 0,
        "created_judgements": 0,
        "skipped_duplicates": 3,
    }
    assert _rows() == before


def test_a_file_with_old_and_new_lines_stores_only_the_new_ones(make_user, make_project):
    project = make_project()
    staff = make_user(staff=True)
    imports.import_jsonl(project=project, importer=staff, data=PAIRS_FILE)

    result = imports.import_jsonl(
        project=project,
        importer=staff,
        data=PAIRS_FILE + b"\n" + _jsonl({"prompt": "p4", "responses": ["f", "g"]}),
    )

    assert (result.created_comparisons, result.skipped_duplicates) == (1, 3)
    assert Comparison.objects.filter(project=project).count() == 4


def test_duplicate_lines_within_one_file_are_stored_once(make_user, make_project):
    project = make_project()
    data = b"\n".join(
        [
            b'{"prompt": "p", "responses": ["a", "b"]}',
            b'{"responses":["a","b"],"prompt":"p"}',  # the same content, spaced and ordered anew
            b'{"prompt": "p", "responses": ["b", "a"]}',  # another order: another line
            b'{"prompt": "p", "chosen": "a", "rejected": "b"}',  # judged: another line
            b'{"prompt": "p", "chosen": "a", "rejected": "b"}',
        ]
    )

    result = imports.import_jsonl(project=project, importer=make_user(staff=True), data=data)

    assert (result.created_comparisons, result.created_judgements) == (3, 1)
    assert (result.created_items, result.skipped_duplicates) == (6, 2)
    assert Comparison.objects.filter(project=project).count() == 3


def test_the_same_line_in_another_project_is_no_duplicate(make_user, make_project):
    staff = make_user(staff=True)
    first, second = make_project(), make_project()
    imports.import_jsonl(project=first, importer=staff, data=PAIRS_FILE)

    result = imports.import_jsonl(project=second, importer=staff, data=PAIRS_FILE)

    assert (result.created_comparisons, result.skipped_duplicates) == (3, 0)


def test_a_rejected_file_marks_none_of_its_good_lines_as_imported(make_user, make_project):
    project = make_project()
    staff = make_user(staff=True)
    with pytest.raises(ImportRejected):
        imports.import_jsonl(project=project, importer=staff, data=PAIRS_FILE + b"\n{oops")

    result = imports.import_jsonl(project=project, importer=staff, data=PAIRS_FILE)

    assert (result.created_comparisons, result.skipped_duplicates) == (3, 0)


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_file_at_once_store_it_once(make_user, make_project):
    project = make_project()
    staff = make_user(staff=True)
    lines = _jsonl(*({"prompt": f"p{i}", "responses": ["a", "b"]} for i in range(200)))
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(imports.import_jsonl(project=project, importer=staff, data=lines))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    assert sorted((r.created_comparisons, r.skipped_duplicates) for r in results) == [
        (0, 200),
        (200, 0),
    ]
    assert Comparison.objects.filter(project=project).count() == 200
