"""Tabular trajectory projects: a real Celery worker runs a FrozenLake round from synthetic
judgements; the steps' outputs, UCB pair selection across rounds, and config validation."""

import imageio_ffmpeg
import numpy as np
import pytest
from django.core.files.storage import default_storage

from labeling.models import Comparison, Item
from tests.training.rounds import judge_all, wait_until_finished
from training import artifacts, services
from training.kinds import tabular, trajectory
from training.kinds.registry import kind_for
from training.ml.tabular.mdp import make_tabular_mdp
from training.models import Policy, RewardModel, Run
from training.runner import run_round_here

LAKE = {
    "env_id": "FrozenLakeNotSlippery-v1",
    "segment_length": 8,
    "fps": 4,
    "algorithm": "value_iteration",
    "comparisons_per_round": 100,
    "selection": "disagreement",
    "render_clips": False,
    "gamma": 0.9,
    "seed": 3,
}
GOAL = 15  # FrozenLake 4x4: states 0..15 row by row, the goal bottom right


def _run_round_here(project) -> Run:
    """One round, its steps run in this process (no broker)."""
    return run_round_here(services.start_round(project=project, trigger="test", enqueue=False))


def _greedy_path(actions: np.ndarray, *, start: int = 0, max_steps: int = 50) -> list[int]:
    mdp = make_tabular_mdp(env_id="FrozenLakeNotSlippery-v1")
    path = [start]
    while not mdp.terminal[path[-1]] and len(path) <= max_steps:
        path.append(int(np.argmax(mdp.transitions[path[-1], actions[path[-1]]])))
    return path


@pytest.mark.worker
def test_a_worker_runs_a_frozenlake_round_and_the_learned_rewards_optimal_policy_reaches_the_goal(
    celery_worker_process, make_user, make_project, api_client_for
):
    staff = make_user(staff=True)
    project = make_project(kind="trajectory", config=LAKE, round_size=10_000)
    client = api_client_for(staff)

    # Round 1: no judgements yet, so it only makes comparisons, from the random policy.
    response = client.post(f"/api/projects/{project.slug}/rounds/")
    assert response.status_code == 202, response.json()
    first = wait_until_finished(Run.objects.get(pk=response.json()["id"]), timeout=120)
    assert first.status == "succeeded", first.error
    assert Comparison.objects.filter(project=project).count() == LAKE["comparisons_per_round"]
    assert judge_all(project) == LAKE["comparisons_per_round"]

    # Round 2: fit r̂ on those judgements, value iteration on r̂, new comparisons.
    response = client.post(f"/api/projects/{project.slug}/rounds/")
    second = wait_until_finished(Run.objects.get(pk=response.json()["id"]), timeout=120)
    assert second.status == "succeeded", second.error
    steps = {s.kind: s.metrics for s in second.steps.all()}
    assert steps["fit_reward_model"]["reward/n_pairs"] == LAKE["comparisons_per_round"]
    assert steps["improve_policy"]["regret"] == pytest.approx(0.0, abs=1e-9)
    assert steps["improve_policy"]["charts/true_return"] == 1.0

    reward_model = RewardModel.objects.get(project=project)
    policy = Policy.objects.filter(project=project).order_by("-version").first()
    assert policy.version == 1 and policy.metrics["policy/reward_model_version"] == 1
    with default_storage.open(policy.checkpoint.name, "rb") as f:
        table = np.load(f)  # π(a|s) (16, 4), one-hot rows
    assert table.shape == (16, 4) and np.allclose(table.sum(axis=1), 1.0)
    path = _greedy_path(table.argmax(axis=1))
    assert path[-1] == GOAL and len(path) == 7  # the shortest path: 6 moves
    with default_storage.open(reward_model.checkpoint.name, "rb") as f:
        assert np.load(f).shape == (16, 4)
    assert Comparison.objects.filter(project=project, data__round=2).count() == 100


@pytest.mark.django_db
def test_segments_are_stored_with_clips_of_segment_length_frames(make_project, media_root):
    config = {**LAKE, "comparisons_per_round": 2, "render_clips": True}
    project = make_project(kind="trajectory", config=config, round_size=10_000)
    round_run = _run_round_here(project)
    assert round_run.status == "succeeded", round_run.error

    items = Item.objects.filter(project=project)
    assert items.count() == 4
    for item in items:
        segment = artifacts.load_segment(item)
        rows = tabular.state_actions(segment)
        assert rows.shape == (config["segment_length"], 2)
        assert segment.observations.shape == (config["segment_length"],)  # states, stored as is
        assert np.array_equal(rows[:, 0], segment.observations)
        assert item.data["true_return"] == pytest.approx(float(segment.true_rewards.sum()))
        frames, _ = imageio_ffmpeg.count_frames_and_secs(default_storage.path(item.clip.name))
        assert frames == config["segment_length"]
        assert default_storage.exists(item.poster.name)
    assert Policy.objects.get(project=project, version=0).metrics == {"policy/initial": 1}


@pytest.mark.django_db
def test_ucb_selection_keeps_its_state_between_rounds_and_learns_from_judged_pairs(
    make_project, media_root
):
    config = {**LAKE, "comparisons_per_round": 12, "selection": "ucb", "algorithm": "q_learning",
              "env_steps_per_round": 300}  # fmt: skip
    project = make_project(kind="trajectory", config=config, round_size=10_000)
    for _ in range(3):
        round_run = _run_round_here(project)
        assert round_run.status == "succeeded", round_run.error
        assert judge_all(project) == 12

    generated = {
        s.number: s.metrics
        for s in Run.objects.filter(project=project, kind=Run.Kind.GENERATE_COMPARISONS)
    }
    assert generated[1]["comparisons/selection"] == 0  # no reward model yet: random
    assert "selection/ucb_updates" not in generated[2]  # a fresh selector chose these
    state = generated[2]["selection/ucb_state"]
    assert len(state["pending"]) == 12 and sum(state["counts"]) == 0
    assert generated[3]["selection/ucb_updates"] == 12  # round 2's pairs, judged since
    assert sum(generated[3]["selection/ucb_state"]["counts"]) == 12
    assert generated[3]["selection/ucb_mean_surprise"] > 0
    ucb_data = Comparison.objects.filter(project=project, data__round=3).values_list(
        "data", flat=True
    )
    assert {d["ucb_candidate"] for d in ucb_data} == {
        int(i) for i in generated[3]["selection/ucb_state"]["pending"]
    }

    improved = Run.objects.get(project=project, kind=Run.Kind.IMPROVE_POLICY, number=3).metrics
    assert improved["policy/episodes"] == 300  # model-free: episodes against r̂
    assert improved["policy/regret"] >= -1e-9 and "regret" in improved


@pytest.mark.django_db
def test_tabular_algorithms_go_to_the_tabular_kind_and_the_others_to_the_neural_one(
    make_project,
):
    tabular_project = make_project(kind="trajectory", config=LAKE)
    neural_project = make_project(kind="trajectory", config={**LAKE, "algorithm": "ppo"})
    assert kind_for(tabular_project) is tabular.KIND
    assert kind_for(neural_project) is trajectory.KIND


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({"env_id": "CartPole-v1", "algorithm": "value_iteration"}, "algorithm", "model"),
        ({"env_id": "CartPole-v1", "algorithm": "policy_iteration"}, "algorithm", "model"),
        ({"env_id": "CartPole-v1", "algorithm": "q_learning"}, "algorithm", "Discrete"),
        ({"env_id": "FrozenLake-v1", "algorithm": "sarsa", "gamma": 1.0}, "gamma", "below 1"),
    ],
)
def test_a_tabular_algorithm_the_env_cannot_support_is_a_400_naming_the_key(
    make_user, api_client_for, config, key, says
):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "lake", "name": "Lake", "kind": "trajectory", "config": config},
        format="json",
    )
    assert response.status_code == 400
    message = response.json()["config"][key]
    assert says in str(message)


@pytest.mark.django_db
def test_toy_text_envs_accept_every_tabular_algorithm_and_ucb(make_user, api_client_for):
    client = api_client_for(make_user(staff=True))
    for n, (env_id, algorithm) in enumerate(
        [
            ("FrozenLakeNotSlippery-v1", "value_iteration"),
            ("FrozenLake8x8-v1", "policy_iteration"),
            ("CliffWalking-v1", "sarsa"),
            ("Taxi-v4", "q_learning"),
            ("FrozenLake-v1", "mc_control"),
        ]
    ):
        config = {"env_id": env_id, "algorithm": algorithm, "selection": "ucb", "gamma": 0.9}
        response = client.post(
            "/api/projects/",
            {"slug": f"toy-{n}", "name": "Toy", "kind": "trajectory", "config": config},
            format="json",
        )
        assert response.status_code == 201, response.json()
