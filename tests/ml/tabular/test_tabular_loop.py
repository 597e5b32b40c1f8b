"""The pure parts of the tabular loop: segments with exploring starts and absorbing ends,
their clips, and the uncertainty and surprise that choose pairs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from training.ml.bradley_terry import bradley_terry_loss
from training.ml.tabular.dynamic_programming import deterministic_policy
from training.ml.tabular.mdp import make_tabular_mdp
from training.ml.tabular.optimizers import (
    evaluate_tabular_policy,
    optimise_tabular_policy,
    start_value,
    tabular_env,
)
from training.ml.tabular.segments import (
    behaviour_policy,
    collect_tabular_segments,
    exploring_start_states,
    render_tabular_segment,
)
from training.ml.tabular.selection import (
    preference_surprise,
    preference_uncertainty,
    state_action_counts,
)

LAKE = ("FrozenLake-v1", {"is_slippery": False})
SLIPPERY = ("FrozenLake-v1", {"is_slippery": True})
HOLES, GOAL = {5, 7, 11, 12}, 15


def _collect(lake=LAKE, **kwargs):
    env_id, env_kwargs = lake
    defaults = {"policy": None, "n_segments": 40, "segment_length": 8, "seed": 0}
    return collect_tabular_segments(env_id=env_id, env_kwargs=env_kwargs, **{**defaults, **kwargs})


def test_a_segment_that_terminates_stays_in_its_terminal_state_earning_nothing():
    segments = _collect(exploring_start_fraction=1.0, n_segments=200)
    ended = [s for s in segments if s.states[-1] in HOLES | {GOAL}]
    assert ended
    for segment in ended:
        first = int(np.flatnonzero(segment.states == segment.states[-1])[0])
        assert np.all(segment.states[first:] == segment.states[-1])
        assert np.all(segment.actions[first + 1 :] == 0)
        assert np.all(segment.true_rewards[first:] == 0.0)
    assert any(s.true_return == 1.0 for s in segments)  # some reach the goal


def test_exploring_starts_begin_in_reachable_non_terminal_states():
    env = gym.make(LAKE[0], **LAKE[1])
    starts = set(exploring_start_states(env=env).tolist())
    assert starts == set(range(16)) - HOLES - {GOAL}
    segments = _collect(exploring_start_fraction=1.0)
    assert all(s.start_state in starts and s.states[0] == s.start_state for s in segments)
    unexplored = _collect(exploring_start_fraction=0.0)
    assert all(s.start_state is None and s.states[0] == 0 for s in unexplored)


def test_a_greedy_behaviour_policy_follows_its_table_except_for_epsilon():
    right = np.zeros((16, 4))
    right[:, 2] = 1.0
    assert np.allclose(behaviour_policy(policy=right, epsilon=0.2)[0], [0.05, 0.05, 0.85, 0.05])
    segments = _collect(policy=right, exploring_start_fraction=0.0, segment_length=3)
    assert all(list(s.states) == [0, 1, 2] for s in segments)


@pytest.mark.parametrize("lake", [LAKE, SLIPPERY], ids=["deterministic", "slippery"])
def test_clips_replay_the_segment_exactly(lake):
    segments = _collect(lake, exploring_start_fraction=0.5, n_segments=6)
    for segment in segments:
        frames = render_tabular_segment(env_id=lake[0], env_kwargs=lake[1], segment=segment)
        assert frames.shape[0] == len(segment) and frames.dtype == np.uint8


def test_surprise_is_the_bradley_terry_loss_of_each_pair():
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(16, 4))
    a, b = rng.integers(0, 4, size=(2, 5, 6, 2)) * np.array([4, 1])  # states 0..12, actions
    p_a = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    surprise = preference_surprise(reward=reward, segments_a=a, segments_b=b, p_a=p_a)
    returns_a = reward[a[..., 0], a[..., 1]].sum(axis=1)
    returns_b = reward[b[..., 0], b[..., 1]].sum(axis=1)
    for i in range(5):
        expected = bradley_terry_loss(
            torch.tensor(returns_a[i : i + 1]), torch.tensor(returns_b[i : i + 1]),
            torch.tensor(p_a[i : i + 1]),
        )  # fmt: skip
        assert surprise[i] == pytest.approx(expected.item())


def test_state_action_counts_count_visits():
    segments = np.array([[[0, 1], [0, 1], [3, 2]]])
    counts = state_action_counts(segments=segments, n_states=4, n_actions=3)
    assert counts.shape == (1, 12) and counts[0, 1] == 2 and counts[0, 3 * 3 + 2] == 1


def test_unexplored_pairs_are_more_uncertain_than_judged_ones_and_terminal_rows_not_at_all():
    mdp = make_tabular_mdp(env_id=LAKE[0], env_kwargs=LAKE[1])
    judged_a = np.tile(np.array([[[0, 2], [1, 2]]]), (30, 1, 1))  # 30 judgements: (0,R),(1,R)
    judged_b = np.tile(np.array([[[0, 1], [4, 1]]]), (30, 1, 1))  # against (0,D),(4,D)
    reward = np.zeros((16, 4))
    reward[0, 2], reward[1, 2] = 1.0, 1.0

    def uncertainty(a, b):
        return preference_uncertainty(
            reward=reward, judged_a=judged_a, judged_b=judged_b,
            candidates_a=np.array([a]), candidates_b=np.array([b]),
            weight_decay=1e-3, terminal=mdp.terminal,
        )[0]  # fmt: skip

    known = uncertainty([[0, 2], [1, 2]], [[0, 1], [4, 1]])
    unexplored = uncertainty([[8, 2], [9, 2]], [[8, 1], [12, 1]])
    assert unexplored > 10 * known
    assert uncertainty([[5, 0], [5, 0]], [[7, 0], [7, 0]]) == 0.0  # holes: r̂ fixed at 0
    assert uncertainty([[8, 2], [9, 2]], [[8, 2], [9, 2]]) == 0.0  # the same segment twice


@pytest.mark.parametrize(
    "algorithm", ["value_iteration", "policy_iteration", "q_learning", "sarsa"]
)
def test_each_optimiser_finds_the_shortest_path_for_a_reward_that_pays_at_the_goal(algorithm):
    env = tabular_env("FrozenLakeNotSlippery-v1")
    actions, metrics = optimise_tabular_policy(
        env=env, algorithm=algorithm, reward=env.mdp.rewards, gamma=0.9, episodes=2_000, seed=0
    )
    optimal = start_value(mdp=env.mdp, actions=actions, gamma=0.9)
    assert optimal == pytest.approx(0.9**5)  # the goal after 6 moves
    policy = deterministic_policy(actions=actions, n_actions=4)
    true_return, mean_reward = evaluate_tabular_policy(
        env_id=env.env_id, policy=policy, reward=env.mdp.rewards, episodes=3, seed=0
    )
    assert true_return == 1.0 and mean_reward == pytest.approx(1 / 6)
    assert metrics


def test_a_model_based_optimiser_refuses_an_env_without_a_model():
    env = tabular_env("FrozenLakeNotSlippery-v1")
    no_model = type(env)(env_id=env.env_id, n_states=16, n_actions=4, mdp=None)
    with pytest.raises(ValueError, match="needs the model"):
        optimise_tabular_policy(
            env=no_model, algorithm="value_iteration", reward=np.zeros((16, 4)), gamma=0.9,
            episodes=1, seed=0,
        )  # fmt: skip
