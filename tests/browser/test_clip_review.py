"""Reviewing a pair of clips in a real browser: pause and play (p), scrub both together,
half speed (h), and a loop marker that counts the clips wrapping around."""

from __future__ import annotations

import numpy as np
import pytest
from django.test.testcases import _MediaFilesHandler

from labeling import services
from labeling.models import Item
from tests.browser.test_annotator_page import PASSWORD, log_in_and_open, shown_item_ids
from training.artifacts import store_clip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("transactional_db", "media_through_the_app"),
]

FPS = 25
FRAMES = 50  # a two-second clip, as the demo's


@pytest.fixture
def media_through_the_app(monkeypatch):
    """Django's live server answers MEDIA_URL itself, from MEDIA_ROOT and without byte
    ranges (so no seeking); send media to the app's own view instead, as in production."""
    monkeypatch.setattr(_MediaFilesHandler, "_should_handle", lambda self, path: False)


def moving_bar(offset: int) -> np.ndarray:
    """(FRAMES, 48, 64, 3) uint8: a white bar that moves one column a frame."""
    frames = np.zeros((FRAMES, 48, 64, 3), dtype=np.uint8)
    for t in range(FRAMES):
        frames[t, :, (t + offset) % 64] = 255
    return frames


def clip_state(page) -> list[dict]:
    return page.eval_on_selector_all(
        "article.candidate video",
        "vs => vs.map(v => ({paused: v.paused, t: v.currentTime, rate: v.playbackRate}))",
    )


def test_clips_pause_scrub_together_play_at_half_speed_and_mark_their_loops(
    page, live_server, media_root, make_user, make_project
):
    annotator = make_user("ann", password=PASSWORD)
    project = make_project(
        "clips",
        kind="trajectory",
        members=[annotator],
        config={"env_id": "Pendulum-v1", "render_clips": False, "fps": FPS},
    )
    items = [
        Item.objects.create(project=project, **store_clip(project, moving_bar(k), fps=FPS))
        for k in (0, 20)
    ]
    services.create_comparison(project=project, items=items)
    log_in_and_open(page, live_server, username="ann", slug="clips")
    shown_item_ids(page)
    page.wait_for_function(
        """() => {
            const vs = Array.from(document.querySelectorAll("article.candidate video"));
            return vs.length === 2 && vs.every((v) => v.readyState >= 3 && !v.paused
                && v.currentTime > 0.2);
        }""",
        timeout=15_000,
    )
    assert page.is_visible("#clip-controls")
    assert float(page.get_attribute("#clip-scrub", "max")) == pytest.approx(2.0, abs=0.1)

    page.keyboard.press("p")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('article.candidate video'))"
        ".every(v => v.paused)"
    )
    paused = clip_state(page)
    page.wait_for_timeout(400)
    assert [v["t"] for v in clip_state(page)] == [v["t"] for v in paused]  # it stays put
    assert page.text_content("#clip-play .label") == "Play"

    page.evaluate(
        """() => {
            const scrub = document.getElementById("clip-scrub");
            scrub.value = "1.2";
            scrub.dispatchEvent(new Event("input", {bubbles: true}));
        }"""
    )
    page.wait_for_timeout(200)
    scrubbed = clip_state(page)
    assert all(v["paused"] and v["t"] == pytest.approx(1.2, abs=0.05) for v in scrubbed), scrubbed

    page.keyboard.press("p")
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('article.candidate video'))
                      .every(v => !v.paused && v.currentTime > 1.3)"""
    )
    playing = clip_state(page)
    assert abs(playing[0]["t"] - playing[1]["t"]) < 0.25  # still in step
    assert page.text_content("#clip-play .label") == "Pause"

    page.keyboard.press("h")
    assert [v["rate"] for v in clip_state(page)] == [0.5, 0.5]
    assert page.get_attribute("#clip-half", "aria-pressed") == "true"
    page.wait_for_function(
        "() => document.getElementById('clip-loops').textContent === '↻ loop 1'",
        timeout=15_000,
    )
    assert page.evaluate("document.getElementById('candidates').classList.contains('looped')")
    page.keyboard.press("h")
    assert [v["rate"] for v in clip_state(page)] == [1, 1]

    page.click("#clip-play")  # the button does what p does
    assert all(v["paused"] for v in clip_state(page))
    assert page.js_errors == []
