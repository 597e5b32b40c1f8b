"""Clips of a trajectory project play, side by side and in sync, in a real browser."""

from __future__ import annotations

import pytest

from labeling.models import Judgement
from tests.browser.test_annotator_page import PASSWORD, log_in_and_open, shown_item_ids
from training import services
from training.runner import run_round_here

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_pendulum_clips_play_in_sync_and_can_be_judged(
    page, live_server, media_root, make_user, make_project
):
    annotator = make_user("ann", password=PASSWORD)
    project = make_project(
        "pendulum",
        kind="trajectory",
        members=[annotator],
        config={"env_id": "Pendulum-v1", "segment_length": 20, "comparisons_per_round": 2},
    )
    # Round 1 run in this process: it renders the first clips.
    run_round_here(services.start_round(project=project, trigger="test", enqueue=False))

    log_in_and_open(page, live_server, username="ann", slug="pendulum")
    shown = shown_item_ids(page)
    page.wait_for_function(
        """() => {
            const videos = Array.from(document.querySelectorAll("article.candidate video"));
            return videos.length === 2 && videos.every((v) => v.readyState >= 3
                && !v.paused && v.currentTime > 0.3);
        }""",
        timeout=15_000,
    )
    state = page.eval_on_selector_all(
        "article.candidate video",
        "vs => vs.map(v => ({err: v.error && v.error.code, w: v.videoWidth, t: v.currentTime,"
        " loop: v.loop, poster: v.poster}))",
    )
    assert all(v["err"] is None and v["w"] > 0 and v["loop"] and v["poster"] for v in state)
    assert abs(state[0]["t"] - state[1]["t"]) < 0.25  # started together, kept in sync

    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelectorAll('article.candidate').length")
    judgement = None
    for _ in range(50):
        judgement = Judgement.objects.filter(annotator=annotator).first()
        if judgement:
            break
        page.wait_for_timeout(100)
    assert judgement is not None and judgement.ranking == shown
    assert page.js_errors == []
