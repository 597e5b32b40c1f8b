"""Tabular RL: the model read from gymnasium, dynamic programming, model-free prediction and
control, and the tabular reward model fitted from preferences."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from training.ml.tabular.dynamic_programming import (
    deterministic_policy,
    policy_evaluation_closed_form,
    policy_evaluation_iterative,
    policy_iteration,
    value_iteration,
)
from training.ml.tabular.mdp import (
    TabularMDP,
    expected_reward_table,
    make_tabular_mdp,
    tabular_mdp_from_env,
)
from training.ml.tabular.monte_carlo import MonteCarloControlConfig, mc_control_glie
from training.ml.tabular.random_walk import RandomWalkEnv
from training.ml.tabular.reward import (
    fit_tabular_reward_model,
    optimal_policy_regret,
    sample_segments,
    synthetic_preferences,
)
from training.ml.tabular.td_control import TDControlConfig, q_learning, sarsa
from training.ml.tabular.td_prediction import (
    TDPredictionConfig,
    n_step_td_prediction,
    off_policy_td0_prediction,
    td0_prediction,
)

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3  # FrozenLake; CliffWalking has 0 up, 1 right, 2 down, 3 left
CLIFF_START, CLIFF_GOAL = 36, 47
CLIFF_EDGE_ROW = range(25, 35)  # row 2, columns 1..10: one step above the cliff

FROZEN_LAKES = {
    "4x4 deterministic": ("FrozenLake-v1", {"is_slippery": False}),
    "4x4 slippery": ("FrozenLake-v1", {"is_slippery": True}),
    "8x8 slippery": ("FrozenLake8x8-v1", {"is_slippery": True}),
    "8x8 deterministic": ("FrozenLake8x8-v1", {"is_slippery": False}),
}


def greedy_path(
    *, mdp: TabularMDP, actions: np.ndarray, start: int, max_steps: int = 100
) -> tuple[list[int], float]:
    """States visited and undiscounted return of a deterministic policy on a deterministic MDP."""
    states, total = [start], 0.0
    for _ in range(max_steps):
        state = states[-1]
        if mdp.terminal[state]:
            break
        total += mdp.rewards[state, actions[state]]
        states.append(int(mdp.transitions[state, actions[state]].argmax()))
    return states, total


# --- the model ------------------------------------------------------------------------


def test_frozenlake_model_has_absorbing_zero_reward_terminals():
    mdp = make_tabular_mdp(env_id="FrozenLake-v1", env_kwargs={"is_slippery": True})

    assert mdp.transitions.shape == (16, 4, 16) and mdp.rewards.shape == (16, 4)
    np.testing.assert_allclose(mdp.transitions.sum(axis=2), 1.0)
    assert np.flatnonzero(mdp.terminal).tolist() == [5, 7, 11, 12, 15]  # holes and the goal
    for state in np.flatnonzero(mdp.terminal):
        np.testing.assert_array_equal(mdp.transitions[state, :, state], 1.0)
        np.testing.assert_array_equal(mdp.rewards[state], 0.0)
    # From 14, moving right reaches the goal with probability 1/3 (slippery) and pays 1.
    assert mdp.rewards[14, RIGHT] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(mdp.initial_distribution, np.eye(16)[0])


def test_cliffwalking_and_taxi_models_are_read():
    assert "CliffWalking-v1" in gym.envs.registry and "Taxi-v4" in gym.envs.registry
    cliff = make_tabular_mdp(env_id="CliffWalking-v1")
    assert np.flatnonzero(cliff.terminal).tolist() == [CLIFF_GOAL]
    assert cliff.rewards[CLIFF_START, 1] == -100.0  # stepping right from the start: the cliff
    assert cliff.transitions[CLIFF_START, 1, CLIFF_START] == 1.0  # ... sends you back

    taxi = make_tabular_mdp(env_id="Taxi-v4")
    assert taxi.transitions.shape == (500, 6, 500) and taxi.terminal.sum() == 4
    start_value = taxi.initial_distribution @ value_iteration(mdp=taxi, gamma=0.99).v
    assert start_value > 0  # the +20 delivery outweighs the −1 steps


def test_env_without_a_tabular_model_is_refused_by_name():
    with pytest.raises(ValueError, match="Blackjack-v1 exposes no tabular model"):
        make_tabular_mdp(env_id="Blackjack-v1")


# --- dynamic programming ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(FROZEN_LAKES))
def test_value_iteration_and_policy_iteration_reach_the_same_optimal_values(name):
    env_id, kwargs = FROZEN_LAKES[name]
    mdp = make_tabular_mdp(env_id=env_id, env_kwargs=kwargs)

    by_values = value_iteration(mdp=mdp, gamma=0.99)
    by_policies = policy_iteration(mdp=mdp, gamma=0.99)

    np.testing.assert_allclose(by_values.v, by_policies.v, atol=1e-6)
    np.testing.assert_allclose(by_values.q, by_policies.q, atol=1e-6)
    assert by_values.v[0] > 0  # the goal can be reached from the start
    # Both greedy policies are optimal: evaluated exactly, they reach v*.
    for solution in (by_values, by_policies):
        policy = deterministic_policy(actions=solution.policy, n_actions=mdp.n_actions)
        v = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=0.99).v
        np.testing.assert_allclose(v, by_policies.v, atol=1e-6)


@pytest.mark.parametrize("name", ["4x4 slippery", "8x8 slippery"])
def test_closed_form_and_iterative_policy_evaluation_agree(name):
    env_id, kwargs = FROZEN_LAKES[name]
    mdp = make_tabular_mdp(env_id=env_id, env_kwargs=kwargs)
    uniform = np.full((mdp.n_states, mdp.n_actions), 1 / mdp.n_actions)

    exact = policy_evaluation_closed_form(mdp=mdp, policy=uniform, gamma=0.95)
    iterated = policy_evaluation_iterative(mdp=mdp, policy=uniform, gamma=0.95)

    np.testing.assert_allclose(iterated.v, exact.v, atol=1e-6)
    assert iterated.iterations > 1


def test_closed_form_evaluation_allows_gamma_one_only_for_terminating_policies():
    mdp = make_tabular_mdp(env_id="FrozenLake-v1", env_kwargs={"is_slippery": False})
    uniform = np.full((16, 4), 0.25)
    v = policy_evaluation_closed_form(mdp=mdp, policy=uniform, gamma=1.0).v  # P(reach goal)
    assert 0 < v[0] < 1

    always_left = deterministic_policy(actions=np.zeros(16, dtype=int), n_actions=4)
    with pytest.raises(ValueError, match="singular"):
        policy_evaluation_closed_form(mdp=mdp, policy=always_left, gamma=1.0)


# --- model-free control -----------------------------------------------------------------


def test_q_learning_finds_the_cliff_edge_path_on_cliffwalking():
    mdp = make_tabular_mdp(env_id="CliffWalking-v1")
    result = q_learning(env=gym.make("CliffWalking-v1"), seed=0, config=TDControlConfig())

    path, total = greedy_path(mdp=mdp, actions=result.policy, start=CLIFF_START)

    assert path[-1] == CLIFF_GOAL
    assert len(path) - 1 == 13 and total == -13.0  # up, 11 × right, down
    assert set(CLIFF_EDGE_ROW) <= set(path)  # it walks right along the edge


def test_sarsa_learns_the_safer_path_away_from_the_cliff_edge():
    mdp = make_tabular_mdp(env_id="CliffWalking-v1")
    result = sarsa(env=gym.make("CliffWalking-v1"), seed=0, config=TDControlConfig(step_size=0.2))

    path, total = greedy_path(mdp=mdp, actions=result.policy, start=CLIFF_START)

    assert path[-1] == CLIFF_GOAL
    assert len(path) - 1 > 13 and total < -13.0  # longer than the optimal path ...
    assert not set(CLIFF_EDGE_ROW) & set(path)  # ... because it keeps off the edge row


def test_monte_carlo_control_with_glie_reaches_the_goal_on_deterministic_frozenlake():
    mdp = make_tabular_mdp(env_id="FrozenLake-v1", env_kwargs={"is_slippery": False})
    result = mc_control_glie(
        env=gym.make("FrozenLake-v1", is_slippery=False),
        seed=0,
        config=MonteCarloControlConfig(gamma=0.95, episodes=300),
    )

    path, total = greedy_path(mdp=mdp, actions=result.policy, start=0)

    assert path[-1] == 15 and total == 1.0
    assert len(path) - 1 == 6  # the shortest path, as γ < 1 rewards it
    assert result.episode_returns[-50:].mean() > 0.9  # ε_k = 1/k: nearly greedy by then


# --- model-free prediction ----------------------------------------------------------------


def _random_walk() -> tuple[RandomWalkEnv, TabularMDP]:
    env = RandomWalkEnv(n_states=5)
    return env, tabular_mdp_from_env(env=env)


def test_td0_and_n_step_td_estimate_v_pi_on_the_random_walk():
    env, mdp = _random_walk()
    policy = np.tile([0.3, 0.7], (mdp.n_states, 1))
    v_pi = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=0.9).v
    config = TDPredictionConfig(gamma=0.9, step_size=0.01, episodes=3_000)

    td0 = td0_prediction(env=env, policy=policy, seed=0, config=config)
    td3 = n_step_td_prediction(env=env, policy=policy, n=3, seed=0, config=config)

    np.testing.assert_allclose(td0.v, v_pi, atol=0.05)
    np.testing.assert_allclose(td3.v, v_pi, atol=0.05)


@pytest.mark.parametrize("correction", ["target", "td_error"])
def test_off_policy_td_with_importance_sampling_matches_the_target_policys_values(correction):
    env, mdp = _random_walk()
    target = np.tile([0.3, 0.7], (mdp.n_states, 1))  # π: mostly right
    behaviour = np.full((mdp.n_states, 2), 0.5)  # μ: a fair coin
    v_pi = policy_evaluation_closed_form(mdp=mdp, policy=target, gamma=0.9).v
    v_mu = policy_evaluation_closed_form(mdp=mdp, policy=behaviour, gamma=0.9).v
    assert np.abs(v_mu - v_pi).max() > 0.15  # so matching v_π is not an accident

    estimate = off_policy_td0_prediction(
        env=env,
        target_policy=target,
        behaviour_policy=behaviour,
        seed=0,
        config=TDPredictionConfig(
            gamma=0.9, step_size=0.01, episodes=4_000, importance_correction=correction
        ),
    )

    np.testing.assert_allclose(estimate.v, v_pi, atol=0.1)


def test_off_policy_td_refuses_a_behaviour_policy_that_does_not_cover_the_target():
    env, mdp = _random_walk()
    always_right = np.tile([0.0, 1.0], (mdp.n_states, 1))
    always_left = np.tile([1.0, 0.0], (mdp.n_states, 1))
    with pytest.raises(ValueError, match="cover"):
        off_policy_td0_prediction(
            env=env, target_policy=always_right, behaviour_policy=always_left, seed=0
        )


@pytest.mark.parametrize("as_function", [False, True])
def test_a_reward_override_replaces_the_env_reward(as_function):
    env, mdp = _random_walk()
    policy = np.full((mdp.n_states, 2), 0.5)
    table = np.tile([-0.1, 0.2], (mdp.n_states, 1))  # a "learned" r̂(s, a), unlike the env's
    reward = (lambda s, a, s_next: table[s, a]) if as_function else table
    v_hat = policy_evaluation_closed_form(
        mdp=mdp.with_rewards(rewards=expected_reward_table(mdp=mdp, reward=reward)),
        policy=policy,
        gamma=0.9,
    ).v

    estimate = td0_prediction(
        env=env,
        policy=policy,
        seed=0,
        config=TDPredictionConfig(gamma=0.9, step_size=0.01, episodes=3_000),
        reward=reward,
    )

    np.testing.assert_allclose(estimate.v, v_hat, atol=0.05)


# --- the tabular reward model -------------------------------------------------------------


def test_reward_fitted_from_bradley_terry_preferences_has_a_zero_regret_optimal_policy():
    mdp = make_tabular_mdp(env_id="FrozenLake-v1", env_kwargs={"is_slippery": False})
    segments_a = sample_segments(mdp=mdp, n_segments=500, length=4, seed=1)
    segments_b = sample_segments(mdp=mdp, n_segments=500, length=4, seed=2)
    p_a = synthetic_preferences(
        reward=mdp.rewards, segments_a=segments_a, segments_b=segments_b, seed=3, temperature=0.25
    )

    fit = fit_tabular_reward_model(
        segments_a=segments_a,
        segments_b=segments_b,
        p_a=p_a,
        n_states=mdp.n_states,
        n_actions=mdp.n_actions,
        terminal=mdp.terminal,
        seed=0,
    )
    regret = optimal_policy_regret(mdp=mdp, learned_reward=fit.reward, gamma=0.9)

    assert fit.heldout_accuracy >= 0.9
    assert np.unravel_index(fit.reward.argmax(), fit.reward.shape) == (14, RIGHT)
    assert regret.optimal_value == pytest.approx(0.9**5)  # 6 steps, reward on the last
    assert regret.regret == pytest.approx(0.0, abs=1e-9)
    # The platform's loop on a tabular env: Q-learning on r̂ instead of the env's reward.
    learned = q_learning(
        env=gym.make("FrozenLake-v1", is_slippery=False),
        seed=0,
        config=TDControlConfig(gamma=0.9, episodes=300),
        reward=fit.reward,
    )
    path, total = greedy_path(mdp=mdp, actions=learned.policy, start=0)
    assert path[-1] == 15 and total == 1.0


def test_regret_is_positive_for_a_misleading_reward():
    mdp = make_tabular_mdp(env_id="FrozenLake-v1", env_kwargs={"is_slippery": False})
    into_the_hole = np.zeros((16, 4))
    into_the_hole[4, RIGHT] = 1.0  # 4 → 5 is a hole

    regret = optimal_policy_regret(mdp=mdp, learned_reward=into_the_hole, gamma=0.9)

    assert regret.policy[4] == RIGHT and regret.policy_value == 0.0
    assert regret.regret == pytest.approx(0.9**5)
