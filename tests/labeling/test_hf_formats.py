"""Exports in the Hugging Face formats: TRL's preference format (plain and
conversational, with edits), KTO's {prompt, completion, label}, full with every field,
each as JSONL and as Parquet that datasets.load_dataset reads; bad values answered 400
naming the parameter."""

from __future__ import annotations

import io
import json

import datasets
import pyarrow.parquet as pq
import pytest

from labeling import conversations, exports, services
from labeling.models import Item, Judgement

FEEDBACK = {
    "feedback": {
        "strength": "optional",
        "ratings": "optional",
        "critique": "optional",
        "edit": "optional",
        "both_bad": True,
    },
    "criteria": [{"name": "helpful", "weight": 3.0}, {"name": "safe", "weight": 1.0}],
}
PROMPT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi?"},
]


def _comparison(project, texts, *, prompt="a prompt", chat=False):
    """A comparison of items with ``texts``; ``chat``: a conversation's (PROMPT, and each
    candidate an earlier assistant turn then the text)."""
    items = [
        Item.objects.create(
            project=project,
            prompt=conversations.flatten(PROMPT) if chat else prompt,
            prompt_messages=PROMPT if chat else None,
            text=text,
            messages=[
                {"role": "assistant", "content": "Well."},
                {"role": "assistant", "content": text},
            ]
            if chat
            else None,
        )
        for text in texts
    ]
    return services.create_comparison(project=project, items=items), items


def _judge(project, comparison, annotator, items, *, choice=None, ranking=None, **fields):
    """A judgement stored as the judgement API stores it, built directly."""
    shown = [item.pk for item in items]
    if ranking is None and choice in (None, "left"):
        ranking = shown
    return Judgement.objects.create(
        project=project,
        comparison=comparison,
        annotator=annotator,
        choice=choice or ("left" if len(items) == 2 else "ranking"),
        ranking=ranking,
        shown_order=shown,
        **fields,
    )


def _edit_of(winner: Item, text: str) -> Item:
    messages = (
        None
        if winner.messages is None
        else [*winner.messages[:-1], {"role": "assistant", "content": text}]
    )
    return Item.objects.create(
        project=winner.project,
        prompt=winner.prompt,
        prompt_messages=winner.prompt_messages,
        text=text,
        messages=messages,
        data={"source": "edit", "edit_of": winner.pk},
    )


@pytest.fixture
def staff_client(make_user, api_client_for):
    return api_client_for(make_user(staff=True))


def _get(client, project, query: str):
    return client.get(f"/api/projects/{project.slug}/export/?{query}")


def _jsonl(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines()]


# --- trl -------------------------------------------------------------------------------------
def test_trl_puts_an_edit_above_every_ranked_item_then_the_ranking(make_user, make_project):
    project = make_project(config=FEEDBACK)
    comparison, (a, b) = _comparison(project, ["good", "bad"])
    _judge(project, comparison, make_user(), [a, b], edit=_edit_of(a, "better"))

    rows = list(exports.export_trl(project))

    assert rows == [
        {"prompt": "a prompt", "chosen": "better", "rejected": "good"},
        {"prompt": "a prompt", "chosen": "better", "rejected": "bad"},
        {"prompt": "a prompt", "chosen": "good", "rejected": "bad"},
    ]


def test_trl_of_a_conversational_project_is_trls_conversational_format(
    make_user, make_project, staff_client
):
    project = make_project(config=FEEDBACK)
    comparison, (a, b) = _comparison(project, ["yes", "no"], chat=True)
    _judge(project, comparison, make_user(), [a, b], choice="right", ranking=[b.pk, a.pk])
    plain, (c, d) = _comparison(project, ["c", "d"])  # a plain pair beside: one message each
    _judge(project, plain, make_user(), [c, d])

    rows = _jsonl(_get(staff_client, project, "format=trl"))

    assert rows == [
        {
            "prompt": PROMPT,
            "chosen": [
                {"role": "assistant", "content": "Well."},
                {"role": "assistant", "content": "no"},
            ],
            "rejected": [
                {"role": "assistant", "content": "Well."},
                {"role": "assistant", "content": "yes"},
            ],
        },
        {
            "prompt": [{"role": "user", "content": "a prompt"}],
            "chosen": [{"role": "assistant", "content": "c"}],
            "rejected": [{"role": "assistant", "content": "d"}],
        },
    ]


def test_trl_leaves_out_both_bad_ties_and_skips(make_user, make_project):
    project = make_project(config=FEEDBACK)
    for choice in ("both_bad", "tie", "skip"):
        comparison, items = _comparison(project, [f"{choice} 1", f"{choice} 2"])
        _judge(project, comparison, make_user(), items, choice=choice, ranking=[])

    assert list(exports.export_trl(project)) == []


# --- kto -------------------------------------------------------------------------------------
def test_kto_labels_from_weighted_ratings_and_from_thumbs(make_user, make_project, staff_client):
    project = make_project(config=FEEDBACK)
    rated, (r1, r2, r3) = _comparison(project, ["rated well", "rated badly", "rated 4"])
    _judge(
        project, rated, make_user(), [r1, r2, r3],
        ratings={
            str(r1.pk): {"helpful": 6, "safe": 3},  # (3·6 + 3) / 4 = 5.25: desirable
            str(r2.pk): {"helpful": 2, "safe": 7},  # (6 + 7) / 4 = 3.25: neither, left out
            str(r3.pk): {"helpful": 1, "safe": 5},  # (3 + 5) / 4 = 2: undesirable
        },
    )  # fmt: skip
    thumbs, (won, lost) = _comparison(project, ["winner", "loser"])
    _judge(project, thumbs, make_user(), [won, lost], choice="right", ranking=[lost.pk, won.pk])
    bad, (x, y) = _comparison(project, ["x", "y"])
    _judge(project, bad, make_user(), [x, y], choice="both_bad", ranking=[])

    rows = _jsonl(_get(staff_client, project, "format=kto"))

    assert {(row["completion"], row["label"]) for row in rows} == {
        ("rated well", True),
        ("rated 4", False),
        ("loser", True),  # ranked first
        ("winner", False),
        ("x", False),
        ("y", False),
    }
    assert len(rows) == 6 and all(row["prompt"] == "a prompt" for row in rows)
    assert set(rows[0]) == {"prompt", "completion", "label"}


def test_kto_of_a_conversation_gives_message_lists_and_an_edit_is_desirable(
    make_user, make_project
):
    project = make_project(config=FEEDBACK)
    comparison, (a, b) = _comparison(project, ["yes", "no"], chat=True)
    _judge(project, comparison, make_user(), [a, b], edit=_edit_of(a, "yes!"))

    rows = list(exports.export_kto(project))

    assert rows[0] == {
        "prompt": PROMPT,
        "completion": [
            {"role": "assistant", "content": "Well."},
            {"role": "assistant", "content": "yes!"},
        ],
        "label": True,
    }
    assert [(r["completion"][-1]["content"], r["label"]) for r in rows[1:]] == [
        ("yes", True),
        ("no", False),
    ]


# --- full ------------------------------------------------------------------------------------
def test_full_has_strength_ratings_critique_edit_messages_and_both_bad(
    make_user, make_project, staff_client
):
    project = make_project(config=FEEDBACK)
    comparison, (a, b) = _comparison(project, ["yes", "no"], chat=True)
    edit = _edit_of(a, "yes!")
    _judge(
        project, comparison, make_user("ann"), [a, b], strength="strong", critique="b is rude",
        ratings={str(a.pk): {"helpful": 6, "safe": 7}, str(b.pk): {"helpful": 2, "safe": 1}},
        edit=edit,
    )  # fmt: skip
    other, items = _comparison(project, ["c", "d"])
    _judge(project, other, make_user(), items, choice="both_bad", ranking=[])

    judged, both_bad = _jsonl(_get(staff_client, project, "format=full"))

    assert judged["annotator"] == "ann" and judged["choice"] == "left"
    assert (judged["strength"], judged["critique"]) == ("strong", "b is rude")
    assert judged["edit"] == {"id": edit.pk, "text": "yes!", "messages": edit.messages}
    first = judged["items"][0]
    assert first == {
        "id": a.pk,
        "prompt": conversations.flatten(PROMPT),
        "text": "yes",
        "prompt_messages": PROMPT,
        "messages": a.messages,
        "ratings": {"helpful": 6, "safe": 7},
    }
    assert judged["items"][1]["ratings"] == {"helpful": 2, "safe": 1}
    assert both_bad["choice"] == "both_bad" and both_bad["ranking"] == []
    assert (both_bad["strength"], both_bad["critique"], both_bad["edit"]) == ("", "", None)
    assert both_bad["items"][0]["messages"] is None and both_bad["items"][0]["ratings"] is None


# --- Parquet ---------------------------------------------------------------------------------
def _load_parquet(response, tmp_path) -> datasets.Dataset:
    assert response.status_code == 200, response.content[:500]
    path = tmp_path / "export.parquet"
    path.write_bytes(b"".join(response.streaming_content))
    return datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )


@pytest.fixture
def judged_project(make_user, make_project):
    """A project with a conversation's judgement carrying every feedback part, a plain
    ranking with ratings, a both_bad and a gold tie judged."""
    project = make_project(config=FEEDBACK)
    comparison, (a, b) = _comparison(project, ["yes", "no"], chat=True)
    _judge(
        project, comparison, make_user(), [a, b], strength="clear", critique="fine",
        ratings={str(a.pk): {"helpful": 7, "safe": 7}, str(b.pk): {"helpful": 1, "safe": 1}},
        edit=_edit_of(a, "yes!"),
    )  # fmt: skip
    ranking, items = _comparison(project, ["r1", "r2", "r3"])
    _judge(project, ranking, make_user(), items, ratings={str(items[0].pk): {"helpful": 5}})
    bad, items = _comparison(project, ["x", "y"])
    _judge(project, bad, make_user(), items, choice="both_bad", ranking=[])
    bad.gold_ranking = "tie"
    bad.save()
    return project


@pytest.mark.parametrize("kind", ["trl", "kto", "full"])
def test_each_format_as_parquet_is_what_datasets_reads_back(
    judged_project, staff_client, tmp_path, kind
):
    as_jsonl = _jsonl(_get(staff_client, judged_project, f"format={kind}"))

    response = _get(staff_client, judged_project, f"format={kind}&file=parquet")

    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert f'filename="{judged_project.slug}-{kind}.parquet"' in response["Content-Disposition"]
    dataset = _load_parquet(response, tmp_path)
    assert len(dataset) == len(as_jsonl) > 0
    if kind == "full":  # a struct's fields are the project's criteria: absent ones None
        for row in as_jsonl:
            row["gold"] = [] if row["gold"] == "tie" else row["gold"]
            for item in row["items"]:
                if item["ratings"] is not None:
                    item["ratings"] = {"helpful": None, "safe": None} | item["ratings"]
    assert dataset.to_list() == as_jsonl


def test_parquet_of_a_project_without_judgements_still_has_the_columns(
    make_project, staff_client, tmp_path
):
    response = _get(staff_client, make_project(), "format=kto&file=parquet")

    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == 0 and table.column_names == ["prompt", "completion", "label"]


def test_trl_parquet_of_a_conversation_is_message_lists(judged_project, staff_client, tmp_path):
    dataset = _load_parquet(_get(staff_client, judged_project, "file=parquet"), tmp_path)

    assert dataset.features["chosen"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("string")}
    )
    assert dataset[0]["chosen"][-1] == {"role": "assistant", "content": "yes!"}  # the edit


def test_full_parquet_of_a_trajectory_project(make_user, make_project, staff_client, tmp_path):
    project = make_project(kind="trajectory")
    comparison, items = _comparison(project, ["", ""])
    for item, seed in zip(items, (3, 4), strict=True):
        item.data = {"episode_seed": seed, "start": 0, "policy_version": 1, "true_return": 2.5}
        item.save()
    _judge(project, comparison, make_user(), items)

    dataset = _load_parquet(_get(staff_client, project, "file=parquet"), tmp_path)

    assert [i["episode_seed"] for i in dataset[0]["items"]] == [3, 4]
    assert "strength" not in dataset.column_names


# --- bad values and who may export -----------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("format=dpo", "format", "format: must be trl, kto or full for a text project; got 'dpo'"),
        ("format=segments", "format", "segments is for trajectory projects"),
        ("format=kto&file=csv", "file", "file: must be jsonl or parquet; got 'csv'"),
        ("file=", "file", "file: must be jsonl or parquet; got ''"),
    ],
)
def test_a_bad_format_or_file_is_400_naming_it(make_project, staff_client, query, field, message):
    response = _get(staff_client, make_project(), query)

    assert response.status_code == 400
    assert response.json()["field"] == field and message in response.json()["detail"]


def test_segments_take_no_file(make_project, staff_client):
    response = _get(staff_client, make_project(kind="trajectory"), "format=segments&file=parquet")

    assert response.status_code == 400 and response.json()["field"] == "file"


def test_a_member_may_not_export_parquet(make_user, make_project, api_client_for):
    member = make_user()
    project = make_project(members=[member])

    response = _get(api_client_for(member), project, "format=kto&file=parquet")

    assert response.status_code == 403
