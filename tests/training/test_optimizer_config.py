"""A trajectory project's optimiser hyperparameters: the keys a config may override are
the optimisers' own fields, and what is not given comes from the env's action-space family."""

from __future__ import annotations

import dataclasses

import pytest

from labeling.config import project_config
from training.kinds import trajectory
from training.kinds.config import A2C_KEYS, PPO_KEYS, REINFORCE_KEYS
from training.ml.control.actor_critic import A2CConfig
from training.ml.control.policies import policy_for_env
from training.ml.control.policy_gradient import ReinforceConfig
from training.ml.control.ppo import PPOConfig


@pytest.mark.parametrize(
    ("keys", "optimizer_config"),
    [(PPO_KEYS, PPOConfig), (A2C_KEYS, A2CConfig), (REINFORCE_KEYS, ReinforceConfig)],
)
def test_the_overridable_keys_are_the_optimisers_fields_but_gamma(keys, optimizer_config):
    fields = {f.name for f in dataclasses.fields(optimizer_config)}
    assert set(keys) == fields - {"gamma"}


def _config(**raw):
    return project_config("trajectory", raw)


def test_continuous_control_gets_the_ppo_papers_settings_and_overrides_win():
    config = _config(env_id="Pendulum-v1", gamma=0.95, ppo={"learning_rate": 1e-3})
    ppo = trajectory.optimizer_config(config, policy_for_env("Pendulum-v1", seed=0))
    assert (ppo.num_envs, ppo.num_steps, ppo.update_epochs) == (8, 256, 10)
    assert ppo.num_envs * ppo.num_steps // ppo.num_minibatches == 64  # minibatch size
    assert ppo.kl_coef == 0.0 and ppo.kl_target is None  # the plain clipped objective
    assert ppo.learning_rate == 1e-3  # the project's override
    assert ppo.gamma == 0.95  # the project's own discount, no longer ignored


def test_discrete_classic_control_keeps_the_cartpole_defaults():
    config = _config(env_id="CartPole-v1", algorithm="a2c", a2c={"ent_coef": 0.0})
    a2c = trajectory.optimizer_config(config, policy_for_env("CartPole-v1", seed=0))
    assert a2c == dataclasses.replace(A2CConfig(), ent_coef=0.0)
    ppo = trajectory.optimizer_config(
        _config(env_id="CartPole-v1"), policy_for_env("CartPole-v1", seed=0)
    )
    assert ppo == PPOConfig()


def test_a_front_loaded_project_spends_its_label_budget_over_its_rounds_then_stops():
    config = _config(label_schedule="front_loaded", label_budget=100, label_rounds=4)
    counts = [config.comparisons_in_batch(n) for n in range(1, 8)]
    assert counts[0] == 25 and sum(counts) == 100 and counts[5:] == [0, 0]
    assert _config(comparisons_per_round=9).comparisons_in_batch(40) == 9  # uniform


@pytest.mark.parametrize("missing", ["label_budget", "label_rounds"])
def test_the_front_loaded_schedule_needs_a_budget_and_rounds(missing):
    from core.errors import InvalidConfig

    raw = {"label_schedule": "front_loaded", "label_budget": 100, "label_rounds": 4}
    del raw[missing]
    with pytest.raises(InvalidConfig, match=missing):
        _config(**raw)
