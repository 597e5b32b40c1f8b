"""Linear value-function approximation: closed-form MC and TD fixed points and the SGD
methods that reach them, on the random walk."""

from __future__ import annotations

import numpy as np
import pytest

from training.ml.tabular.dynamic_programming import policy_evaluation_closed_form
from training.ml.tabular.episodes import sample_episode
from training.ml.tabular.linear_fa import (
    LinearFAConfig,
    gradient_mc,
    lstd,
    mc_fixed_point,
    mc_least_squares,
    on_policy_distribution,
    semi_gradient_td0,
    td_fixed_point,
)
from training.ml.tabular.mdp import tabular_mdp_from_env
from training.ml.tabular.random_walk import RandomWalkEnv

GAMMA = 0.9


@pytest.fixture(scope="module")
def walk():
    env = RandomWalkEnv(n_states=5)
    mdp = tabular_mdp_from_env(env=env)
    policy = np.full((mdp.n_states, 2), 0.5)
    position = np.linspace(-1.0, 1.0, mdp.n_states)
    affine = np.stack([np.ones(mdp.n_states), position], axis=1)  # x(s) = (1, position)  (S, 2)
    rng = np.random.default_rng(0)
    episodes = [
        sample_episode(env=env, policy=policy, rng=rng, max_steps=1_000) for _ in range(1_000)
    ]
    return mdp, policy, affine, episodes


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


def test_on_policy_distribution_of_the_symmetric_walk():
    env = RandomWalkEnv(n_states=5)
    mdp = tabular_mdp_from_env(env=env)
    mu = on_policy_distribution(mdp=mdp, policy=np.full((7, 2), 0.5))
    np.testing.assert_allclose(mu, np.array([0, 1, 2, 3, 2, 1, 0]) / 9)


def test_with_tabular_features_mc_and_td_fixed_points_are_v_pi(walk):
    mdp, policy, _, _ = walk
    one_hot = np.eye(mdp.n_states)[:, 1:-1]  # one feature per non-terminal state
    v_pi = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=GAMMA).v

    for fixed_point in (mc_fixed_point, td_fixed_point):
        w = fixed_point(mdp=mdp, policy=policy, features=one_hot, gamma=GAMMA)
        np.testing.assert_allclose(one_hot @ w, v_pi, atol=1e-12)


def test_with_fewer_features_mc_and_td_fixed_points_differ(walk):
    mdp, policy, affine, _ = walk
    w_mc = mc_fixed_point(mdp=mdp, policy=policy, features=affine, gamma=GAMMA)
    w_td = td_fixed_point(mdp=mdp, policy=policy, features=affine, gamma=GAMMA)
    assert np.abs(w_mc - w_td).max() > 0.01  # MC minimises the error; TD is biased


def test_sampled_closed_forms_approach_the_model_closed_forms(walk):
    mdp, policy, affine, episodes = walk
    w_mc = mc_fixed_point(mdp=mdp, policy=policy, features=affine, gamma=GAMMA)
    w_td = td_fixed_point(mdp=mdp, policy=policy, features=affine, gamma=GAMMA)

    assert (
        relative_error(mc_least_squares(episodes=episodes, features=affine, gamma=GAMMA), w_mc)
        < 0.05
    )
    assert relative_error(lstd(episodes=episodes, features=affine, gamma=GAMMA), w_td) < 0.05


def test_gradient_mc_and_semi_gradient_td_converge_to_their_closed_forms(walk):
    mdp, policy, affine, episodes = walk
    config = LinearFAConfig(gamma=GAMMA, step_size=0.1, step_size_decay_updates=100, epochs=3)

    w_gradient_mc = gradient_mc(episodes=episodes, features=affine, seed=0, config=config)
    w_semi_gradient_td = semi_gradient_td0(
        episodes=episodes, features=affine, seed=0, config=config
    )

    # ... to the fixed points of the same episodes,
    w_mc_sampled = mc_least_squares(episodes=episodes, features=affine, gamma=GAMMA)
    w_td_sampled = lstd(episodes=episodes, features=affine, gamma=GAMMA)
    assert relative_error(w_gradient_mc, w_mc_sampled) < 0.05
    assert relative_error(w_semi_gradient_td, w_td_sampled) < 0.05
    # ... and so to the model's, within the sampling error.
    w_mc = mc_fixed_point(mdp=mdp, policy=policy, features=affine, gamma=GAMMA)
    w_td = td_fixed_point(mdp=mdp, policy=policy, features=affine, gamma=GAMMA)
    assert relative_error(w_gradient_mc, w_mc) < 0.08
    assert relative_error(w_semi_gradient_td, w_td) < 0.08


def test_features_that_cannot_be_solved_are_refused(walk):
    mdp, policy, _, _ = walk
    all_states = np.eye(mdp.n_states)  # terminal columns are all zero once x(terminal) = 0
    with pytest.raises(ValueError, match="singular"):
        td_fixed_point(mdp=mdp, policy=policy, features=all_states, gamma=GAMMA)
