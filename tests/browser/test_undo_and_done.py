"""The annotator's page in a real browser: Undo (u) brings the last comparison back and
changes the stored answer; the instructions open on a first visit only; the "All done" card
finds new comparisons by itself and says where they come from."""

from __future__ import annotations

from datetime import timedelta

import pytest

from labeling.models import Judgement, JudgementRevision
from tests.browser.test_annotator_page import (
    PASSWORD,
    log_in_and_open,
    shown_item_ids,
    wait_until_replaced,
)
from training import services as training_services
from training.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def wait_for_ids(page, ids: list[int]) -> None:
    """Wait until the comparison with these item ids, in this order, is on screen."""
    page.wait_for_function(
        """ids => JSON.stringify(Array.from(document.querySelectorAll("article.candidate"),
                                         (e) => Number(e.dataset.itemId))) === JSON.stringify(ids)
                 && !document.getElementById("task").hidden""",
        arg=ids,
    )


@pytest.fixture
def annotator(make_user):
    return make_user("ann", password=PASSWORD)


def test_undo_shows_the_last_comparison_again_and_the_next_answer_replaces_the_stored_one(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project("undo", kind="text", overlap=1, members=[annotator])
    make_comparison(project, prompt="first", texts=["first a", "first b"])
    make_comparison(project, prompt="second", texts=["second a", "second b"])
    log_in_and_open(page, live_server, username="ann", slug="undo")

    first = shown_item_ids(page)
    page.keyboard.press("1")  # left
    wait_until_replaced(page, first)
    second = shown_item_ids(page)
    assert page.is_enabled("#undo-last")

    page.keyboard.press("u")
    wait_for_ids(page, first)  # the same items, in the order they were shown
    assert page.is_visible("#revising")
    assert "“left”" in page.text_content("#revising")
    page.keyboard.press("2")  # right, this time
    wait_for_ids(page, second)  # and on with the comparison the page had
    page.wait_for_selector("#message:not([hidden])")
    assert "now “right”" in page.text_content("#message")

    judgement = Judgement.objects.get(annotator=annotator)
    assert (judgement.choice, judgement.ranking) == ("right", [first[1], first[0]])
    assert judgement.shown_order == first and judgement.revised_at is not None
    (old,) = JudgementRevision.objects.filter(judgement=judgement)
    assert (old.choice, old.ranking) == ("left", first)

    page.click("#undo-last")  # the button does what u does; u again goes back unchanged
    wait_for_ids(page, first)
    page.keyboard.press("u")
    wait_for_ids(page, second)
    assert page.is_hidden("#revising")
    page.keyboard.press("3")
    page.wait_for_selector("#done:not([hidden])")
    assert [j.choice for j in Judgement.objects.order_by("pk")] == ["right", "tie"]
    assert JudgementRevision.objects.count() == 1  # going back changed nothing
    assert page.js_errors == []


def test_undo_after_the_revise_window_shows_the_servers_409_and_keeps_the_answer(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project("late", kind="text", members=[annotator])
    make_comparison(project)
    make_comparison(project)
    log_in_and_open(page, live_server, username="ann", slug="late")
    first = shown_item_ids(page)
    page.keyboard.press("1")
    wait_until_replaced(page, first)
    second = shown_item_ids(page)
    judgement = Judgement.objects.get(annotator=annotator)
    Judgement.objects.filter(pk=judgement.pk).update(
        created_at=judgement.created_at - timedelta(minutes=11)
    )

    page.keyboard.press("u")
    wait_for_ids(page, first)
    page.keyboard.press("2")

    wait_for_ids(page, second)
    page.wait_for_selector("#message.error:not([hidden])")
    assert "revise_window_s = 600 s" in page.text_content("#message")
    assert Judgement.objects.get(pk=judgement.pk).choice == "left"
    assert not JudgementRevision.objects.exists()
    assert page.is_disabled("#undo-last")  # nothing left that can be changed
    assert page.js_errors == []


def test_instructions_are_open_on_the_first_visit_and_collapsed_afterwards(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "guide", kind="text", members=[annotator], instructions="Prefer the **kind** answer."
    )
    make_comparison(project)
    log_in_and_open(page, live_server, username="ann", slug="guide")
    shown_item_ids(page)
    assert page.is_visible("#instructions")
    assert "kind" in page.text_content("#instructions")

    page.reload()
    shown_item_ids(page)
    assert page.is_hidden("#instructions")
    page.click("#toggle-instructions")
    assert page.is_visible("#instructions")
    assert page.js_errors == []


def test_all_done_card_shows_a_new_comparison_without_a_reload(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project("imports", kind="text", members=[annotator])
    make_comparison(project)
    log_in_and_open(page, live_server, username="ann", slug="imports")
    first = shown_item_ids(page)
    page.keyboard.press("1")
    page.wait_for_selector("#done:not([hidden])")
    page.wait_for_function("() => document.getElementById('done-reason').textContent")
    assert "when staff import more" in page.text_content("#done-reason")
    assert "training round" not in page.text_content("#done")
    page.evaluate("window.__sameDocument = true")

    added = make_comparison(project, prompt="fresh", texts=["fresh a", "fresh b"])
    new_ids = set(added.slots.values_list("item_id", flat=True))

    page.wait_for_function(
        """ids => {
            const shown = Array.from(document.querySelectorAll("article.candidate"),
                                     (e) => Number(e.dataset.itemId));
            return !document.getElementById("task").hidden && shown.length === 2
                && shown.every((id) => ids.includes(id));
        }""",
        arg=sorted(new_ids),
        timeout=20_000,
    )
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert page.is_hidden("#done")
    assert set(shown_item_ids(page)) == new_ids and set(first).isdisjoint(new_ids)
    assert page.js_errors == []


def test_all_done_card_of_a_training_project_shows_the_running_round(
    page, live_server, annotator, make_project
):
    project = make_project(
        "traj",
        kind="trajectory",
        members=[annotator],
        config={"env_id": "Pendulum-v1", "render_clips": False},
    )
    round_run = training_services.start_round(project=project, trigger="test", enqueue=False)
    steps = Run.objects.filter(round=round_run)
    steps.filter(kind=Run.Kind.FIT_REWARD_MODEL).update(status=Run.Status.SUCCEEDED, progress=1)
    steps.filter(kind=Run.Kind.IMPROVE_POLICY).update(status=Run.Status.RUNNING, progress=0.2)
    Run.objects.filter(pk=round_run.pk).update(status=Run.Status.RUNNING, progress=0.4)

    log_in_and_open(page, live_server, username="ann", slug="traj")
    page.wait_for_selector("#done:not([hidden])")
    page.wait_for_function(
        "() => document.getElementById('done-reason').textContent.includes('Round 1')"
    )

    assert page.text_content("#done-reason").startswith(
        "Round 1 is training: improving the policy, 40%."
    )
    assert page.is_visible("#done-bar")
    assert page.js_errors == []
