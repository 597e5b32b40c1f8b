"""The annotator's page with a feedback form, in a real browser: a conversation shown turn
by turn under its roles; strength (↑/↓), ratings (Shift+1..7), a critique (c), an edit of
the winner (e) and both_bad (b), each checked in the database."""

from __future__ import annotations

import os

import pytest

from labeling import services
from labeling.conversations import final_content, flatten
from labeling.models import Item, Judgement, Project
from tests.browser.test_annotator_page import (
    PASSWORD,
    REPO_ROOT,
    XSS,
    log_in_and_open,
    shown_item_ids,
    wait_until_replaced,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

PROMPT = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": f"And doubled? {XSS}"},
]
LEFT = [{"role": "assistant", "content": "Let me think."}, {"role": "assistant", "content": "8."}]
RIGHT = [{"role": "assistant", "content": f"Eight. {XSS}"}]


@pytest.fixture
def annotator(make_user):
    return make_user("ann", password=PASSWORD)


def make_conversation(project: Project, prompt: list[dict], candidates: list[list[dict]]):
    """A comparison of conversation candidates, stored as the importer stores them."""
    items = [
        Item.objects.create(
            project=project,
            prompt=flatten(prompt),
            prompt_messages=prompt,
            text=final_content(messages),
            messages=messages,
        )
        for messages in candidates
    ]
    return services.create_comparison(project=project, items=items)


def turns(page, selector: str) -> list[tuple[str, str]]:
    return [
        tuple(t)
        for t in page.eval_on_selector_all(
            f"{selector} .turn",
            "els => els.map(e => [e.dataset.role, e.querySelector('.turn-content').textContent])",
        )
    ]


def message(page) -> str:
    page.wait_for_selector("#message:not([hidden])")
    return page.text_content("#message")


# --- tests -----------------------------------------------------------------------------------
def test_a_conversation_is_shown_turn_by_turn_under_its_roles_and_never_run(
    page, live_server, annotator, make_project
):
    project = make_project("chat", kind="text", members=[annotator])
    make_conversation(project, PROMPT, [LEFT, RIGHT])
    log_in_and_open(page, live_server, username="ann", slug="chat")

    ids = shown_item_ids(page)
    assert page.text_content(".prompt-label") == "Conversation"
    assert turns(page, "#prompt") == [(m["role"], m["content"]) for m in PROMPT]
    cards = page.locator("article.candidate")
    for item_id in ids:  # shown in either order
        messages = Item.objects.get(pk=item_id).messages
        assert turns(page, f'article[data-item-id="{item_id}"]') == [
            (m["role"], m["content"]) for m in messages
        ]
    assert {len(turns(page, f'article[data-item-id="{i}"]')) for i in ids} == {1, 2}
    # each role looks different
    backgrounds = page.eval_on_selector_all(
        "#prompt .turn", "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert len(set(backgrounds[:3])) == 3
    assert page.locator("#task img, #task script").count() == 0
    # no feedback form in this project: the page is as before, a key answers at once
    assert page.is_hidden("#feedback")
    assert page.is_hidden("#pair-actions [data-choice=both_bad]")
    assert cards.locator(".ratings").count() == 0
    page.keyboard.press("b")  # not offered here: nothing happens
    page.keyboard.press("1")
    page.wait_for_selector("#done:not([hidden])")

    judgement = Judgement.objects.get(annotator=annotator)
    assert judgement.choice == "left" and judgement.ranking == [ids[0], ids[1]]
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.js_errors == []


def test_strength_ratings_and_critique_given_by_keys_are_stored(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "rich",
        kind="text",
        members=[annotator],
        config={
            "feedback": {"strength": "required", "ratings": "required", "critique": "optional"},
            "criteria": ["helpful", {"name": "honest", "weight": 2.0}],
        },
    )
    make_comparison(project, prompt="Is the earth flat?", texts=["No, it is round.", "Yes."])
    log_in_and_open(page, live_server, username="ann", slug="rich")

    left, right = shown_item_ids(page)
    assert page.is_visible("#strength-row")
    assert page.locator(".rating-row").count() == 4  # 2 candidates × 2 criteria
    page.keyboard.press("1")  # picks left; Enter sends
    assert page.get_attribute('#pair-actions [data-choice="left"]', "aria-pressed") == "true"
    page.keyboard.press("Enter")
    text = message(page)  # required parts block the answer and say what is missing
    assert "how much better" in text and "ratings of" in text
    assert not Judgement.objects.exists()

    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # slight, then clear
    assert page.get_attribute('[data-strength="clear"]', "aria-pressed") == "true"
    # the highlight starts on the first row and moves on after each rating
    for value in (6, 7, 2, 1):
        page.keyboard.press(f"Shift+Digit{value}")
    # all rated: the highlight stays on the last row; r wraps to the first, Shift+r back
    page.keyboard.press("r")
    page.keyboard.press("Shift+r")
    page.keyboard.press("Shift+Digit3")  # re-rates the last row (right, honest)
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "critique"
    critique = "Left is right; 1 2 s b e are typed, not keys."
    page.keyboard.type(critique)
    page.keyboard.press("Escape")
    assert not Judgement.objects.exists()
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")

    judgement = Judgement.objects.get(annotator=annotator)
    assert judgement.choice == "left"
    assert judgement.shown_order == [left, right]
    assert judgement.strength == "clear"
    assert judgement.ratings == {
        str(left): {"helpful": 6, "honest": 7},
        str(right): {"helpful": 2, "honest": 3},
    }
    assert judgement.critique == critique
    assert judgement.edit is None
    assert page.js_errors == []


def test_an_edit_of_the_winner_is_stored_as_a_new_item_above_it(
    page, live_server, annotator, make_project
):
    project = make_project(
        "edits", kind="text", members=[annotator], config={"feedback": {"edit": "required"}}
    )
    make_conversation(project, PROMPT[:2], [LEFT, RIGHT])
    log_in_and_open(page, live_server, username="ann", slug="edits")

    left, _ = shown_item_ids(page)
    page.keyboard.press("e")  # nothing picked yet: no winner to edit
    assert "Pick the better answer first" in message(page)
    assert page.is_hidden("#edit-box")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")  # an edit is required with a winner
    assert "improved text of the winner" in message(page)
    page.keyboard.press("e")
    assert page.evaluate("document.activeElement.id") == "edit-text"
    winner = Item.objects.get(pk=left)
    assert page.input_value("#edit-text") == winner.messages[-1]["content"]  # the final turn
    assert page.text_content("#edit-of") == "Left"
    page.fill("#edit-text", "2 + 2 = 4, doubled is 8.")
    page.keyboard.press("Escape")
    page.keyboard.press("2")  # the edit is of Left: it does not go with Right
    page.keyboard.press("Enter")
    assert "started from Left's text, but the winner is Right" in message(page)
    page.keyboard.press("1")
    page.keyboard.press("e")  # back in the editor, the text as typed
    assert page.input_value("#edit-text") == "2 + 2 = 4, doubled is 8."
    assert not Judgement.objects.exists()
    page.keyboard.press("Control+Enter")  # sends from the editor
    page.wait_for_selector("#done:not([hidden])")

    judgement = Judgement.objects.select_related("edit").get(annotator=annotator)
    assert judgement.choice == "left"
    edit = judgement.edit
    assert edit.text == "2 + 2 = 4, doubled is 8."
    assert edit.messages == [*winner.messages[:-1], {"role": "assistant", "content": edit.text}]
    assert edit.prompt_messages == PROMPT[:2]
    assert edit.data == {"source": "edit", "edit_of": left}
    assert not edit.comparisons.exists()
    assert page.js_errors == []


def test_both_bad_is_a_button_and_a_key_and_is_stored(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "bad", kind="text", members=[annotator], config={"feedback": {"both_bad": True}}
    )
    for n in range(2):
        make_comparison(project, prompt=f"prompt {n}", texts=[f"bad {n}a", f"bad {n}b"])
    log_in_and_open(page, live_server, username="ann", slug="bad")

    first = shown_item_ids(page)
    assert page.is_visible("#pair-actions [data-choice=both_bad]")
    assert page.is_hidden("#feedback")  # nothing else asked: b answers at once
    page.keyboard.press("b")
    wait_until_replaced(page, first)
    shown_item_ids(page)
    page.click("#pair-actions [data-choice=both_bad]")
    page.wait_for_selector("#done:not([hidden])")

    judgements = Judgement.objects.filter(annotator=annotator)
    assert [j.choice for j in judgements] == ["both_bad", "both_bad"]
    assert not any(j.ranking for j in judgements)  # no preference
    assert page.js_errors == []


def test_the_servers_refusal_is_shown_and_the_answer_can_be_completed(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "strict", kind="text", members=[annotator], config={"feedback": {"critique": "optional"}}
    )
    make_comparison(project, prompt="p", texts=["a", "b"])
    log_in_and_open(page, live_server, username="ann", slug="strict")
    shown_item_ids(page)
    # staff make the critique required while this page still has the old form
    project.config = {**project.config, "feedback": {"critique": "required"}}
    project.save(update_fields=["config"])

    page.keyboard.press("3")
    page.keyboard.press("Enter")
    assert "critique" in message(page)  # the 400's detail, naming the field
    assert page.is_visible("#critique-box")
    assert not Judgement.objects.exists()
    page.keyboard.press("c")
    page.keyboard.type("Both say nothing.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")

    judgement = Judgement.objects.get(annotator=annotator)
    assert (judgement.choice, judgement.critique) == ("tie", "Both say nothing.")
    assert page.js_errors == []


def test_a_ranking_takes_ratings_and_an_edit_of_its_top_candidate(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "ranked",
        kind="text",
        members=[annotator],
        config={"feedback": {"ratings": "optional", "edit": "optional", "both_bad": True}},
    )
    make_comparison(project, k=3, prompt="Name a prime.", texts=["4", "7", "9"])
    log_in_and_open(page, live_server, username="ann", slug="ranked")

    ids = shown_item_ids(page)
    assert page.is_visible("#rank-actions [data-choice=both_bad]")
    page.keyboard.press("Shift+Digit5")  # one of three rows: optional ratings are all or none
    page.keyboard.press("2")
    page.keyboard.press("1")  # the third is implied
    page.keyboard.press("Enter")
    assert "ratings of Candidate 2 on overall, Candidate 3 on overall" in message(page)
    page.keyboard.press("Shift+Digit7")
    page.keyboard.press("Shift+Digit1")
    page.keyboard.press("e")
    assert page.input_value("#edit-text") == Item.objects.get(pk=ids[1]).text  # ranked first
    page.fill("#edit-text", "7, or 11.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")

    judgement = Judgement.objects.select_related("edit").get(annotator=annotator)
    assert judgement.choice == "ranking"
    assert judgement.ranking == [ids[1], ids[0], ids[2]]
    assert judgement.ratings == {
        str(ids[0]): {"overall": 5},
        str(ids[1]): {"overall": 7},
        str(ids[2]): {"overall": 1},
    }
    assert judgement.edit.text == "7, or 11."
    assert judgement.edit.data == {"source": "edit", "edit_of": ids[1]}
    assert page.js_errors == []


def test_changing_an_answer_brings_its_feedback_back_to_be_changed(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "again",
        kind="text",
        members=[annotator],
        config={"feedback": {"strength": "optional", "critique": "optional"}},
    )
    make_comparison(project, prompt="first", texts=["first a", "first b"])
    make_comparison(project, prompt="second", texts=["second a", "second b"])
    log_in_and_open(page, live_server, username="ann", slug="again")

    first = shown_item_ids(page)
    page.keyboard.press("2")
    page.keyboard.press("ArrowUp")  # slight
    page.keyboard.press("c")
    page.keyboard.type("Right is shorter.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    wait_until_replaced(page, first)
    judgement = Judgement.objects.get(annotator=annotator)
    assert (judgement.choice, judgement.strength) == ("right", "slight")

    page.keyboard.press("u")  # the first comparison again, its answer filled in
    page.wait_for_selector("#revising:not([hidden])")
    assert page.get_attribute('#pair-actions [data-choice="right"]', "aria-pressed") == "true"
    assert page.get_attribute('[data-strength="slight"]', "aria-pressed") == "true"
    assert page.input_value("#critique") == "Right is shorter."
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # strong, this time
    page.keyboard.press("Enter")
    assert "now “right”" in message(page)

    judgement.refresh_from_db()
    assert (judgement.choice, judgement.strength) == ("right", "strong")
    assert judgement.critique == "Right is shorter."
    assert judgement.revisions.get().feedback["strength"] == "slight"
    assert page.js_errors == []


def test_screenshot_of_a_conversation_with_a_feedback_form(
    page, live_server, annotator, make_project, tmp_path
):
    """Writes docs/feedback-form.png with UPDATE_SCREENSHOT=1, else a temporary file."""
    project = make_project(
        "assistant-feedback",
        kind="text",
        members=[annotator],
        config={
            "feedback": {
                "strength": "required",
                "ratings": "required",
                "critique": "optional",
                "edit": "optional",
                "both_bad": True,
            },
            "criteria": ["helpful", "honest"],
        },
    )
    make_conversation(
        project,
        [
            {"role": "system", "content": "You are a patient baking assistant."},
            {"role": "user", "content": "My sourdough starter smells like nail polish remover."},
            {"role": "assistant", "content": "That acetone smell usually means it is hungry."},
            {"role": "user", "content": "So what should I do?"},
        ],
        [
            [{"role": "assistant", "content": "Feed it twice a day for two or three days: "
              "discard all but 50 g, then add 50 g flour and 50 g water."}],
            [{"role": "assistant", "content": "Throw it away and start again."}],
        ],
    )  # fmt: skip
    log_in_and_open(page, live_server, username="ann", slug="assistant-feedback")
    shown_item_ids(page)
    page.keyboard.press("1")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Shift+Digit6")
    page.keyboard.press("Shift+Digit7")
    page.keyboard.press("c")
    page.keyboard.type("The left answer says what to do and why.")
    page.keyboard.press("Escape")

    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        target = REPO_ROOT / "docs" / "feedback-form.png"
    else:
        target = tmp_path / "feedback-form.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.js_errors == []
