"""Annotator reliability in rounds: the ``reliability`` config key is validated like every
key, and a round whose project enables it stores each annotator's estimated flip rate in
the reward model's metrics, which training.selectors.annotator_reliability lists. Rounds
run in this process (no worker)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from training import services
from training.kinds.reliability import ANNOTATORS_METRIC
from training.ml.teachers import annotator_panel
from training.models import RewardModel, Run
from training.runner import run_round_here
from training.selectors import annotator_reliability
from training.simulation import simulate_panel

PANEL = annotator_panel(rational=4, mistaken=2, epsilon=0.4)  # benchmarks/annotator_noise.py's
LAKE = {
    "env_id": "FrozenLakeNotSlippery-v1",
    "segment_length": 8,
    "algorithm": "value_iteration",
    "comparisons_per_round": 60,
    "selection": "random",
    "render_clips": False,
    "gamma": 0.9,
    "seed": 3,
    "reliability": {"enabled": True, "em_iterations": 2},  # 2 × 2 judging tables, not 2 × 4
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One thread, as tests/ml runs: the nets are tiny, and two threads on a busy 2-core
    machine are several times slower than one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _round(project) -> Run:
    round_run = run_round_here(services.start_round(project=project, trigger="test", enqueue=False))
    assert round_run.status == "succeeded", round_run.error
    return round_run


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reliability", "key"),
    [
        ({"enabled": "yes"}, "reliability.enabled"),
        ({"enabled": True, "prior_flip_rate": 0.5}, "reliability.prior_flip_rate"),
        ({"prior_strength": 0}, "reliability.prior_strength"),
        ({"em_iterations": 0}, "reliability.em_iterations"),
        ({"flip_rate": 0.1}, "reliability.flip_rate"),
        (True, "reliability"),
    ],
)
@pytest.mark.parametrize("kind", ["trajectory", "text"])
def test_a_bad_reliability_setting_is_a_400_naming_the_key(
    make_user, api_client_for, reliability, key, kind
):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "noisy", "name": "Noisy", "kind": kind, "config": {"reliability": reliability}},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert key in response.json()["config"], response.json()


@pytest.mark.django_db
def test_reliability_is_off_unless_enabled_and_takes_its_settings(make_user, api_client_for):
    client = api_client_for(make_user(staff=True))
    config = {"reliability": {"enabled": True, "prior_flip_rate": 0.2, "em_iterations": 3}}
    response = client.post(
        "/api/projects/",
        {"slug": "noisy", "name": "Noisy", "kind": "trajectory", "config": config},
        format="json",
    )
    assert response.status_code == 201, response.json()
    from labeling.config import project_config
    from training.kinds.reliability import reliability_settings

    settings = reliability_settings(project_config("trajectory", response.json()["config"]))
    assert (settings.prior_flip_rate, settings.em_iterations) == (0.2, 3)
    assert reliability_settings(project_config("trajectory", {})) is None


@pytest.mark.django_db
def test_a_tabular_round_stores_each_annotators_flip_rate_and_the_dashboard_lists_them(
    make_project, make_user, media_root
):
    project = make_project(kind="trajectory", config=LAKE, round_size=10_000)
    _round(project)  # round 1 makes the comparisons
    judged = simulate_panel(project=project, panel=PANEL, limit=None, seed=0)
    assert sum(judged.values()) == LAKE["comparisons_per_round"] and len(judged) == 6

    _round(project)  # round 2 fits r̂ with each annotator's flip rate
    reward_model = RewardModel.objects.get(project=project)
    estimates = reward_model.metrics[ANNOTATORS_METRIC]
    assert len(estimates) == 6
    assert sum(e["n_labels"] for e in estimates.values()) <= LAKE["comparisons_per_round"]
    assert 0 < reward_model.metrics["reliability/mean_flip_rate"] < 0.5

    rows = annotator_reliability(project)
    assert [set(row) for row in rows] == [
        {"annotator_id", "username", "flip_rate", "reliability", "n_labels",
         "reward_model_version", "estimated_at"}
    ] * 6  # fmt: skip
    assert {row["username"] for row in rows} == {f"sim-{name}" for name, _ in PANEL}
    assert [row["flip_rate"] for row in rows] == sorted(
        (row["flip_rate"] for row in rows), reverse=True
    )
    assert all(row["reward_model_version"] == 1 for row in rows)
    client = Client()
    client.force_login(make_user(role="reviewer"))
    page = client.get(f"/projects/{project.slug}/dashboard/").content.decode()
    table = page.split('id="reliability"')[1].split("</table>")[0]
    assert [name in table for name in (row["username"] for row in rows)] == [True] * 6
    # Most FrozenLake segments tie (return 0), so these rest on few labels; the Pendulum
    # round below tells the mistake teachers apart.


@pytest.mark.django_db
def test_without_reliability_a_round_estimates_nothing(make_project, media_root):
    config = {**LAKE, "comparisons_per_round": 12, "reliability": {}}
    project = make_project(kind="trajectory", config=config, round_size=10_000)
    _round(project)
    simulate_panel(project=project, panel=PANEL, limit=None, seed=0)
    _round(project)
    assert ANNOTATORS_METRIC not in RewardModel.objects.get(project=project).metrics
    assert annotator_reliability(project) == []


@pytest.mark.django_db
def test_a_pendulum_round_finds_the_two_mistake_teachers_least_reliable(make_project, media_root):
    config = {
        "env_id": "Pendulum-v1",
        "segment_length": 10,
        "algorithm": "reinforce",
        "env_steps_per_round": 200,
        "comparisons_per_round": 150,
        "selection": "random",
        "ensemble_size": 2,
        "render_clips": False,
        "eval_episodes": 1,
        # seeds 0-6 checked after candidates began running in lockstep: all but 1 pass
        # (there one mistake teacher's flip rate is estimated at 0.06, the bias noted
        # in benchmarks/annotator_noise.py)
        "seed": 0,
        "reliability": {"enabled": True},
    }
    project = make_project(kind="trajectory", config=config, round_size=10_000)
    _round(project)
    simulate_panel(project=project, panel=PANEL, limit=None, seed=0)
    second = _round(project)
    metrics = second.steps.get(kind="fit_reward_model").metrics
    assert (
        RewardModel.objects.get(project=project).metrics[ANNOTATORS_METRIC]
        == (metrics[ANNOTATORS_METRIC])
    )
    rows = annotator_reliability(project)
    assert {row["username"] for row in rows[:2]} == {"sim-mistake-1", "sim-mistake-2"}, rows
    assert all(row["flip_rate"] < 0.1 for row in rows[2:]), rows  # the rational four


@pytest.mark.django_db
def test_a_dpo_round_fits_a_reward_model_for_the_flip_rates_and_weights_its_pairs(
    make_project, media_root, tmp_path_factory
):
    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(12),
        "max_new_tokens": 8,
        "comparisons_per_round": 12,
        "seed": 1,
        "reliability": {"enabled": True, "em_iterations": 2},
    }
    project = make_project(kind="text", config=config, round_size=10_000)
    _round(project)  # samples the first pairs
    simulate_panel(project=project, panel=PANEL, limit=None, seed=0)
    second = _round(project)
    steps = {step.kind: step.metrics for step in second.steps.all()}
    assert len(steps["fit_reward_model"][ANNOTATORS_METRIC]) == 6
    assert 0 < steps["improve_policy"]["reliability/dpo_mean_weight"] <= 1
    assert steps["improve_policy"]["reliability/reward_model_version"] == 1
    # the reward model's own out-of-sample posteriors for the pairs it trained on; only the
    # held-out ones are judged by it now
    assert steps["improve_policy"]["reliability/dpo_pairs_judged_now"] < 12 // 2
    assert len(annotator_reliability(project)) == 6
