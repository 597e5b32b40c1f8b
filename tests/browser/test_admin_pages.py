"""The admin in a real browser at 1280 px: every change list fits the window (none is cut
off), and a judgement reads as what was compared and who won."""

from __future__ import annotations

import random

import pytest
from django.contrib import admin
from django.urls import reverse

from labeling import services
from labeling.models import Item, Judgement
from labeling.summaries import shorten
from training.models import Policy, RewardModel, Run

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

PASSWORD = "correct horse battery staple"
LONG = (
    "the cafe on the corner is lovely, the coffee is warm and the people are kind, "
    "and I would go back there every single morning of the week if I could."
)


def log_in_to_admin(page, live_server, username: str) -> None:
    # the first request imports the URLconf, which can take longer than a page's timeout
    page.goto(f"{live_server.url}/admin/login/", timeout=60_000)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def overflow(page) -> dict[str, int]:
    """How many px the page, and the change list's table, are wider than what shows them:
    the admin scrolls a wide table inside its own box, so a page that fits can still cut
    off the table's last columns."""
    return page.evaluate(
        """() => {
            const results = document.querySelector("#changelist .results");
            return {
                page: document.scrollingElement.scrollWidth - window.innerWidth,
                table: results ? results.scrollWidth - results.clientWidth : 0,
            };
        }"""
    )


@pytest.fixture
def judged_projects(django_user_model, make_user, make_project, make_comparison):
    """A text project with three judged pairs of long responses, a trajectory project with
    one judged pair, and a round with reward models and a policy: a row of every list."""
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    annotator = make_user("sim-rational")
    text = make_project("poems-about-the-sea", members=[annotator])
    for n in range(3):
        comparison = make_comparison(
            text, prompt="How was your day?", texts=[f"{n}: Yes, {LONG}", f"{n}: No, {LONG}"]
        )
        services.assign_next_comparison(annotator=annotator, project=text, rng=random.Random(n))
        services.record_judgement(
            annotator=annotator, comparison=comparison, choice="left", time_spent_ms=98_765
        )
    clips = make_project("pendulum-clips", kind="trajectory", members=[annotator])
    items = [Item.objects.create(project=clips, data={"true_return": -1.0}) for _ in range(2)]
    comparison = services.create_comparison(project=clips, items=items)
    services.assign_next_comparison(annotator=annotator, project=clips, rng=random.Random(0))
    services.record_judgement(annotator=annotator, comparison=comparison, choice="right")
    round_run = Run.objects.create(project=clips, kind="round", number=1, trigger="cli")
    step = Run.objects.create(
        project=clips, kind="fit_reward_model", round=round_run, number=1, trigger="cli"
    )
    metrics = {"reward/n_pairs": 5, "reward/train_loss": 0.693147, "reward/heldout_loss": 0.7}
    parent = RewardModel.objects.create(project=clips, version=1, metrics=metrics, run=step)
    RewardModel.objects.create(project=clips, version=2, parent=parent, metrics=metrics)
    Policy.objects.create(project=clips, version=0, metrics={"policy/initial": 1})
    return {"text": text, "clips": clips}


def test_every_admin_change_list_fits_1280_px(page, live_server, judged_projects):
    log_in_to_admin(page, live_server, "root")
    assert page.evaluate("() => window.innerWidth") == 1280
    cut = {}
    for model in admin.site._registry:
        meta = model._meta
        page.goto(live_server.url + reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert page.locator("#changelist").count() == 1, meta.label
        widths = overflow(page)
        if max(widths.values()) > 0:
            cut[meta.label] = widths
    assert cut == {}, f"cut off at 1280 px (px too wide): {cut}"


def test_the_judgement_list_says_what_won_over_what(page, live_server, judged_projects):
    log_in_to_admin(page, live_server, "root")
    page.goto(live_server.url + reverse("admin:labeling_judgement_changelist"))
    rows = page.eval_on_selector_all(
        "#result_list tbody tr", "rows => rows.map(r => r.innerText.split('\\t').slice(1))"
    )
    text_judgement = Judgement.objects.filter(project=judged_projects["text"]).first()
    winner, loser = (Item.objects.get(pk=pk).text for pk in text_judgement.ranking)
    summaries = [row[0] for row in rows]
    assert summaries[-1] == f"“{shorten(winner)}” over “{shorten(loser)}”"
    assert summaries[-1].count("…") == 2  # long responses are shortened
    clip_judgement = Judgement.objects.get(project=judged_projects["clips"])
    won, lost = clip_judgement.ranking
    assert rows[0][:4] == [
        f"item {won} over item {lost}",
        "Right",
        "sim-rational",
        "pendulum-clips",
    ]
    assert not any("comparison" in summary for summary in summaries)
    assert overflow(page) == {"page": 0, "table": 0}


def test_the_api_docs_render_under_the_content_security_policy(
    page, live_server, django_user_model
):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    log_in_to_admin(page, live_server, "root")
    response = page.goto(f"{live_server.url}/api/docs/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)  # drawn by its script
    assert page.locator(".opblock-summary-path", has_text="/api/projects/").count() > 0
    assert page.js_errors == []
