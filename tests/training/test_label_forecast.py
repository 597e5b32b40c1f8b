"""The dashboard's label forecast: rounds' held-out accuracy (or tabular regret) against
the labels the project had when each finished, and how many more reach label_target."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Judgement
from training.forecast import label_forecast
from training.ml.forecast import PowerLaw
from training.models import Run
from training.selectors import round_history

CURVE = PowerLaw(floor=0.05, scale=2.0, exponent=0.5)  # error 0.05 + 2/√n


@pytest.fixture
def labelled(make_user, make_comparison):
    """A function that gives ``project`` judgements up to ``total`` (created in the past)
    and then a finished round reporting ``metrics``."""
    annotators = iter(make_user() for _ in range(400))
    start = timezone.now() - timedelta(days=1)
    state = {"judged": 0, "round": 0}

    def add(project, total: int, metrics: dict) -> None:
        comparison = make_comparison(project)
        shown = list(comparison.items.values_list("pk", flat=True))
        batch = [
            Judgement(project=project, comparison=comparison, annotator=next(annotators),
                      choice="left", ranking=shown, shown_order=shown)
            for _ in range(total - state["judged"])
        ]  # fmt: skip
        Judgement.objects.bulk_create(batch)
        state["judged"], state["round"] = total, state["round"] + 1
        moment = start + timedelta(hours=state["round"])
        Judgement.objects.filter(pk__in=[j.pk for j in batch]).update(created_at=moment)
        round_run = Run.objects.create(project=project, kind="round", number=state["round"],
                                       status="succeeded", trigger="test",
                                       finished_at=moment + timedelta(minutes=1))  # fmt: skip
        Run.objects.create(project=project, kind="fit_reward_model", round=round_run,
                           number=state["round"], status="succeeded", metrics=metrics)  # fmt: skip

    return add


def test_the_forecast_says_how_many_more_labels_reach_the_target(make_project, labelled):
    project = make_project("p", kind="trajectory", config={"label_target": 0.85})
    for n in (25, 50, 100, 200):
        labelled(project, n, {"reward/heldout_accuracy": 1 - CURVE(n)})

    forecast = label_forecast(project, round_history(project))

    # 0.05 + 2/√n = 0.15  ⇔  n = 400: 200 more than the 200 so far
    assert forecast["labels_so_far"] == 200
    assert forecast["labels_needed"] == pytest.approx(400, rel=0.05)
    assert forecast["more_labels"] == forecast["labels_needed"] - 200
    assert forecast["ci_low"] <= forecast["labels_needed"] <= forecast["ci_high"]
    assert not forecast["reached"]
    assert [p["labels"] for p in forecast["points"]] == [25, 50, 100, 200]


def test_a_target_below_the_curves_floor_is_said_to_be_out_of_reach(make_project, labelled):
    project = make_project("p", kind="trajectory", config={"label_target": 0.99})
    for n in (25, 50, 100, 200):
        labelled(project, n, {"reward/heldout_accuracy": 1 - CURVE(n)})

    forecast = label_forecast(project, round_history(project))

    assert forecast["labels_needed"] is None and forecast["more_labels"] is None


def test_a_tabular_project_forecasts_its_regret(make_project, labelled):
    config = {"env_id": "FrozenLake-v1", "algorithm": "q_learning", "label_target": 0.1}
    project = make_project("t", kind="trajectory", config=config)
    for n in (20, 40, 80):
        labelled(project, n, {"regret": float(CURVE(n))})

    forecast = label_forecast(project, round_history(project))

    assert forecast["metric"] == "regret"
    assert forecast["labels_needed"] == pytest.approx(1600, rel=0.1)  # 0.05 + 2/√n = 0.1


def test_without_a_target_or_enough_rounds_the_forecast_says_why(make_project, labelled):
    untargeted = make_project("u", kind="trajectory")
    early = make_project("e", kind="trajectory", config={"label_target": 0.9})
    labelled(early, 30, {"reward/heldout_accuracy": 0.7})

    assert "label_target" in label_forecast(untargeted, [])["unavailable"]
    assert "needs 3 rounds" in label_forecast(early, round_history(early))["unavailable"]


def test_a_bad_label_target_is_a_400_naming_it(make_user, api_client_for):
    response = api_client_for(make_user(staff=True)).post(
        "/api/projects/",
        {"slug": "b", "name": "B", "kind": "trajectory", "config": {"label_target": "high"}},
        format="json",
    )

    assert response.status_code == 400 and "config.label_target" in str(response.json())


def test_the_dashboard_says_how_many_more_labels_and_draws_the_curve(
    make_project, labelled, make_user, client
):
    project = make_project("p", kind="trajectory", config={"label_target": 0.85})
    for n in (25, 50, 100, 200):
        labelled(project, n, {"reward/heldout_accuracy": 1 - CURVE(n)})
    client.force_login(make_user(role="reviewer"))

    page = client.get("/projects/p/dashboard/")
    plot = client.get("/projects/p/dashboard/forecast.png")

    forecast = page.context["forecast"]
    text = page.content.decode()
    assert f"<strong>{forecast['more_labels']}</strong> more than the 200 so far" in text
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")


def test_without_a_forecast_the_plot_is_a_404_saying_why(make_project, make_user, client):
    make_project("p", kind="trajectory")
    client.force_login(make_user(staff=True))

    response = client.get("/projects/p/dashboard/forecast.png")

    assert response.status_code == 404
