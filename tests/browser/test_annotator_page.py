"""The annotator's page in a real browser: log in, judge with the keyboard, and check what
reached the database. Run with UPDATE_SCREENSHOT=1 to refresh docs/annotator.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labeling.models import Judgement

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

PASSWORD = "correct horse battery staple"
REPO_ROOT = Path(__file__).resolve().parents[2]
XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


# --- helpers ---------------------------------------------------------------------------------
def log_in_and_open(page, live_server, *, username: str, slug: str) -> None:
    """Open the project's page, get sent to the real login form, log in, come back."""
    page.goto(f"{live_server.url}/label/{slug}/")
    assert "/accounts/login/" in page.url, page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{live_server.url}/label/{slug}/")


def shown_item_ids(page) -> list[int]:
    """The item ids of the comparison on screen, in display order (waits for one)."""
    page.wait_for_selector("#task:not([hidden]) article.candidate")
    return [
        int(i)
        for i in page.eval_on_selector_all(
            "article.candidate", "els => els.map(e => e.dataset.itemId)"
        )
    ]


def wait_until_replaced(page, old_ids: list[int]) -> None:
    """Wait until another comparison is on screen, or the 'all done' card."""
    page.wait_for_function(
        """old => {
            const ids = Array.from(document.querySelectorAll("article.candidate"),
                                   (e) => Number(e.dataset.itemId));
            return !document.getElementById("done").hidden
                || JSON.stringify(ids) !== JSON.stringify(old);
        }""",
        arg=old_ids,
    )


@pytest.fixture
def annotator(make_user):
    return make_user("ann", password=PASSWORD)


# --- tests -----------------------------------------------------------------------------------
def test_keyboard_judgements_store_the_side_that_was_shown(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project("pairs", kind="text", overlap=1, members=[annotator])
    for n in range(4):
        make_comparison(project, prompt=f"Prompt {n}", texts=[f"answer {n}a", f"answer {n}b"])
    log_in_and_open(page, live_server, username="ann", slug="pairs")

    shown_item_ids(page)
    assert page.is_visible("#pair-actions")
    assert page.is_hidden("#rank-actions")
    shown: dict[str, list[int]] = {}
    for key, expected in [("1", "left"), ("ArrowRight", "right"), ("Space", "tie")]:
        ids = shown_item_ids(page)
        assert len(ids) == 2
        shown[expected] = ids
        page.keyboard.press(key)
        wait_until_replaced(page, ids)
    assert page.text_content("#progress") == "Judged 3 · Remaining 1"

    judgements = Judgement.objects.filter(annotator=annotator).order_by("pk")
    assert [j.choice for j in judgements] == ["left", "right", "tie"]
    for judgement in judgements:
        ids = shown[judgement.choice]
        assert judgement.shown_order == ids
        assert judgement.time_spent_ms is not None and judgement.time_spent_ms > 0
        if judgement.choice == "left":
            assert judgement.ranking == [ids[0], ids[1]]
        elif judgement.choice == "right":
            assert judgement.ranking == [ids[1], ids[0]]
        else:
            assert not judgement.ranking
    assert page.js_errors == []


def test_ranking_by_number_keys_stores_the_order_pressed(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project("ranks", kind="text", overlap=1, members=[annotator])
    make_comparison(project, k=3, prompt="Rank these", texts=["alpha", "beta", "gamma"])
    log_in_and_open(page, live_server, username="ann", slug="ranks")

    ids = shown_item_ids(page)
    assert len(ids) == 3
    assert page.is_visible("#rank-actions")
    assert page.is_hidden("#pair-actions")
    page.keyboard.press("3")
    page.keyboard.press("Backspace")  # undo: nothing ranked again
    assert page.locator("#ranking li").count() == 0
    page.keyboard.press("2")
    page.keyboard.press("1")  # the third is implied
    assert page.locator("#ranking li").count() == 3
    assert page.is_enabled("#rank-submit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")

    judgement = Judgement.objects.get(annotator=annotator)
    assert judgement.choice == "ranking"
    assert judgement.ranking == [ids[1], ids[0], ids[2]]
    assert judgement.shown_order == ids
    assert judgement.time_spent_ms is not None
    assert page.js_errors == []


def test_untrusted_text_is_shown_as_text_and_never_run(
    page, live_server, annotator, make_project, make_comparison
):
    project = make_project(
        "xss", kind="text", members=[annotator], instructions=f"Be careful. {XSS}"
    )
    make_comparison(project, prompt=XSS, texts=[XSS, "a harmless answer"])
    log_in_and_open(page, live_server, username="ann", slug="xss")

    shown_item_ids(page)
    texts = page.eval_on_selector_all(
        "article.candidate .response", "els => els.map(e => e.textContent)"
    )
    assert XSS in texts
    assert page.text_content("#prompt") == XSS
    assert page.locator("#task img, #task script").count() == 0
    # Instructions are staff-written Markdown: an image may stay, its handler may not.
    assert page.locator("#instructions script, #instructions [onerror]").count() == 0
    page.wait_for_timeout(100)  # give a broken image's onerror its chance to fire
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.js_errors == []


def test_screenshot_of_a_pair(
    page, live_server, annotator, make_project, make_comparison, tmp_path
):
    """Writes docs/annotator.png with UPDATE_SCREENSHOT=1, else a temporary file."""
    project = make_project(
        "helpful-assistant",
        kind="text",
        members=[annotator],
        instructions="Pick the response that is more **helpful**, **honest** and **harmless**.",
    )
    project.name = "Helpful assistant · pairwise"
    project.save(update_fields=["name"])
    make_comparison(
        project,
        prompt="My sourdough starter smells like nail polish remover. Did I ruin it?",
        texts=[
            "Probably not! An acetone smell usually means the starter is hungry: the yeast "
            "and bacteria have run out of food and are producing solvent-like byproducts.\n\n"
            "Try this for two or three days:\n"
            "1. Discard all but about 50 g.\n"
            "2. Feed it equal weights of flour and water (50 g each).\n"
            "3. Repeat every 12 hours, keeping it somewhere warm (24-26 °C).\n\n"
            "Once it reliably doubles within 4-6 hours of a feed and smells pleasantly sour, "
            "it is ready to bake with again. Only throw it out if you see pink or orange "
            "streaks or fuzzy mould.",
            "Yes, that smell means it has gone bad. You should throw it away and start a new "
            "starter from scratch, since a contaminated starter can make you sick.",
        ],
    )
    for n in range(11):
        make_comparison(project, prompt=f"prompt {n}")
    log_in_and_open(page, live_server, username="ann", slug="helpful-assistant")
    shown_item_ids(page)

    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        target = REPO_ROOT / "docs" / "annotator.png"
        target.parent.mkdir(exist_ok=True)
    else:
        target = tmp_path / "annotator.png"
    page.screenshot(path=str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.js_errors == []
