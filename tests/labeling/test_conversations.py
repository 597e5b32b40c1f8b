"""Conversations: imported as chat messages (both line forms, plain parts wrapped), bad
messages refused naming the line and the field, shown by next as given, and an edit of a
conversation's winner keeping its earlier turns."""

from __future__ import annotations

import json

import pytest

from labeling import imports
from labeling.models import Comparison, Item, Judgement

SYSTEM = {"role": "system", "content": "Be brief."}
ASK = {"role": "user", "content": "What is 2 + 2?"}
PROMPT = [SYSTEM, ASK]
FOUR = [{"role": "assistant", "content": "4"}]
FIVE = [
    {"role": "assistant", "content": "Let me think."},
    {"role": "assistant", "content": "5"},
]


@pytest.fixture
def staff(make_user):
    return make_user("boss", staff=True)


def _import(client, project, *lines):
    body = "\n".join(json.dumps(line) for line in lines).encode()
    return client.post(
        f"/api/projects/{project.slug}/import/", body, content_type="application/jsonl"
    )


def test_a_conversation_line_stores_the_messages_and_their_flat_text(
    staff, make_project, api_client_for
):
    project = make_project()
    response = _import(
        api_client_for(staff), project, {"prompt": PROMPT, "responses": [FOUR, FIVE]}
    )

    assert response.status_code == 201, response.content
    four, five = Item.objects.order_by("pk")
    assert (four.prompt_messages, four.messages, four.text) == (PROMPT, FOUR, "4")
    assert (five.messages, five.text) == (FIVE, "5")
    assert four.prompt == "system: Be brief.\n\nuser: What is 2 + 2?"


def test_plain_parts_of_a_conversation_line_become_one_message_of_their_role(
    staff, make_project, api_client_for
):
    project = make_project()
    line = {"prompt": "What is 2 + 2?", "responses": ["4", FIVE]}
    assert _import(api_client_for(staff), project, line).status_code == 201
    four, five = Item.objects.order_by("pk")
    assert four.prompt_messages == [ASK]
    assert four.messages == FOUR and five.messages == FIVE


def test_a_plain_text_line_stays_plain(staff, make_project, api_client_for):
    project = make_project()
    _import(api_client_for(staff), project, {"prompt": "p", "responses": ["a", "b"]})
    assert not Item.objects.exclude(prompt_messages=None).exists()
    assert not Item.objects.exclude(messages=None).exists()


def test_a_judged_conversation_pair_is_an_imported_judgement(staff, make_project, api_client_for):
    project = make_project()
    response = _import(
        api_client_for(staff), project, {"prompt": PROMPT, "chosen": FOUR, "rejected": FIVE}
    )
    assert response.status_code == 201, response.content
    judgement = Judgement.objects.get()
    assert judgement.source == "import" and judgement.comparison.status == "closed"
    chosen, rejected = (Item.objects.get(pk=pk) for pk in judgement.ranking)
    assert (chosen.messages, rejected.messages) == (FOUR, FIVE)


def test_the_same_conversation_however_spelled_is_imported_once(
    staff, make_project, api_client_for
):
    project = make_project()
    client = api_client_for(staff)
    _import(client, project, {"prompt": [ASK], "responses": [FOUR, FIVE]})
    response = _import(client, project, {"prompt": ASK["content"], "responses": [FOUR, FIVE]})
    assert response.status_code == 200 and response.json()["skipped_duplicates"] == 1
    assert Comparison.objects.count() == 1


@pytest.mark.parametrize(
    ("line", "field"),
    [
        pytest.param(
            {"prompt": [SYSTEM, {"role": "robot", "content": "hi"}], "responses": [FOUR, FIVE]},
            "prompt[1].role",
            id="unknown-role",
        ),
        pytest.param(
            {"prompt": PROMPT, "responses": [[{"role": "user", "content": "4"}], FIVE]},
            "responses[0][0].role",
            id="non-assistant-turn-in-a-response",
        ),
        pytest.param(
            {"prompt": PROMPT, "chosen": FOUR, "rejected": [*FIVE, ASK]},
            "rejected[2].role",
            id="non-assistant-final-turn",
        ),
        pytest.param(
            {"prompt": [ASK, *FOUR], "responses": [FOUR, FIVE]},
            "prompt[1].role",
            id="prompt-ending-with-the-assistant",
        ),
        pytest.param(
            {"prompt": PROMPT, "responses": [FOUR, [{"role": "assistant", "content": " "}]]},
            "responses[1][0].content",
            id="empty-content",
        ),
        pytest.param(
            {"prompt": PROMPT, "responses": [FOUR, [{"role": "assistant"}]]},
            "responses[1][0].content",
            id="no-content",
        ),
        pytest.param({"prompt": 7, "responses": [FOUR, FIVE]}, "prompt", id="prompt-a-number"),
        pytest.param({"prompt": [], "responses": [FOUR, FIVE]}, "prompt", id="no-messages"),
        pytest.param(
            {
                "prompt": PROMPT,
                "responses": [FOUR, [{"role": "assistant", "content": "x", "n": 1}]],
            },
            "responses[1][0]",
            id="extra-key",
        ),
    ],
)
def test_a_bad_conversation_is_400_naming_the_line_and_the_field(
    staff, make_project, api_client_for, line, field
):
    project = make_project()
    good = {"prompt": "p", "responses": ["a", "b"]}

    response = _import(api_client_for(staff), project, good, line)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field
    assert body["detail"].startswith(f"line 2: {field}") or body["detail"].startswith(
        f"line 2: '{field}'"
    )
    assert "Nothing from this file was stored" in body["detail"]
    assert not Item.objects.exists()


def test_identical_conversations_as_responses_are_refused(staff, make_project, api_client_for):
    project = make_project()
    response = _import(
        api_client_for(staff), project, {"prompt": PROMPT, "responses": [FOUR, FOUR]}
    )
    assert response.status_code == 400 and "distinct" in response.json()["detail"]


def test_import_lines_takes_conversations_as_the_jsonl_import_does(make_user, make_project):
    project = make_project()
    result = imports.import_lines(
        project=project,
        lines=[(1, {"prompt": PROMPT, "chosen": FOUR, "rejected": "no idea"})],
        importer=make_user(staff=True),
    )
    assert (result.created_items, result.created_judgements) == (2, 1)
    assert Item.objects.get(text="no idea").messages == [
        {"role": "assistant", "content": "no idea"}
    ]


@pytest.fixture
def conversation_leased(staff, make_user, make_project, api_client_for):
    """(client, next answer) of an annotator leased an imported conversation."""
    user = make_user()
    project = make_project(members=[user], config={"feedback": {"edit": "optional"}})
    _import(api_client_for(staff), project, {"prompt": PROMPT, "responses": [FOUR, FIVE]})
    client = api_client_for(user)
    return client, client.post(f"/api/projects/{project.slug}/next/").json()


def test_next_returns_the_conversation_as_given(conversation_leased):
    _, shown = conversation_leased
    assert shown["prompt"] == PROMPT
    by_text = {item["text"]: item for item in shown["items"]}
    assert by_text["4"]["messages"] == FOUR and by_text["5"]["messages"] == FIVE
    assert shown["feedback"] == {"edit": "optional"}


def test_an_edit_of_a_conversation_replaces_the_final_turn_only(conversation_leased):
    client, shown = conversation_leased
    left = shown["items"][0]
    response = client.post(
        f"/api/comparisons/{shown['id']}/judgement/",
        {"choice": "left", "edit": "Four."},
        format="json",
    )

    assert response.status_code == 201, response.content
    edit = Judgement.objects.get().edit
    assert edit.text == "Four." and edit.prompt_messages == PROMPT
    assert edit.messages == [*left["messages"][:-1], {"role": "assistant", "content": "Four."}]
    assert edit.data == {"source": "edit", "edit_of": left["id"]}


def test_the_item_admin_page_shows_the_conversation_with_its_roles(
    staff, make_project, api_client_for, admin_client
):
    project = make_project()
    _import(api_client_for(staff), project, {"prompt": PROMPT, "responses": [FOUR, FIVE]})
    item = Item.objects.get(text="5")

    text = admin_client.get(f"/admin/labeling/item/{item.pk}/change/").content.decode()

    assert "<strong>system</strong>: Be brief." in text
    assert "<strong>assistant</strong>: Let me think." in text
