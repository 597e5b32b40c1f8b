"""Training that continues across rounds: the optimiser's state (Adam's moments and step
counts, PPO's adaptive β) goes into the policy's checkpoint, and continuing from a loaded
checkpoint trains exactly as continuing without the round trip does."""

from __future__ import annotations

import copy

import pytest
import torch

from training.ml.control import checkpoints
from training.ml.control.actor_critic import A2CConfig, train_a2c
from training.ml.control.policies import policy_for_env
from training.ml.control.policy_gradient import ReinforceConfig, train_reinforce
from training.ml.control.ppo import PPOConfig, train_ppo
from training.ml.control.training_state import TrainingState

SMALL = {
    "ppo": (train_ppo, PPOConfig(num_envs=2, num_steps=32, update_epochs=2, num_minibatches=2)),
    "a2c": (train_a2c, A2CConfig(num_envs=2, num_steps=8)),
    "reinforce": (train_reinforce, ReinforceConfig(num_envs=2)),
}


def _parameters(policy) -> list[torch.Tensor]:
    return [p.detach().clone() for p in policy.parameters()]


@pytest.mark.parametrize("algorithm", sorted(SMALL))
def test_continuing_from_a_checkpoint_trains_exactly_as_continuing_in_memory(algorithm, tmp_path):
    train, config = SMALL[algorithm]
    env = "Pendulum-v1"
    policy, state = policy_for_env(env, seed=0), TrainingState()
    train(env_id=env, policy=policy, total_steps=256, config=config, state=state, seed=1)
    assert state.optimizer is not None and state.optimizer["state"]
    path = checkpoints.save_checkpoint(policy, tmp_path / "policy.pt", training_state=state)

    in_memory, memory_state = copy.deepcopy(policy), copy.deepcopy(state)
    loaded, loaded_state = checkpoints.load_policy(path), checkpoints.load_training_state(path)
    assert loaded_state.kl_coef == state.kl_coef
    for policy_, state_ in ((in_memory, memory_state), (loaded, loaded_state)):
        train(env_id=env, policy=policy_, total_steps=256, config=config, state=state_, seed=2)

    for a, b in zip(_parameters(in_memory), _parameters(loaded), strict=True):
        assert torch.equal(a, b)
    steps = [s["step"] for s in loaded_state.optimizer["state"].values()]
    assert all(float(step) == float(steps[0]) > 0 for step in steps)


def test_a_fresh_state_and_no_state_train_alike_and_the_state_carries_adams_steps():
    env, (train, config) = "CartPole-v1", SMALL["ppo"]
    a, b = policy_for_env(env, seed=0), policy_for_env(env, seed=0)
    state = TrainingState()
    train(env_id=env, policy=a, total_steps=128, config=config, seed=3)
    train(env_id=env, policy=b, total_steps=128, config=config, state=state, seed=3)
    for x, y in zip(_parameters(a), _parameters(b), strict=True):
        assert torch.equal(x, y)
    first = float(next(iter(state.optimizer["state"].values()))["step"])
    train(env_id=env, policy=b, total_steps=128, config=config, state=state, seed=4)
    assert float(next(iter(state.optimizer["state"].values()))["step"]) == 2 * first


def test_ppo_continues_its_adaptive_kl_coefficient_and_a_fixed_one_stays_fixed():
    env, (train, config) = "CartPole-v1", SMALL["ppo"]
    state = TrainingState(kl_coef=0.8)
    metrics = train(env_id=env, policy=policy_for_env(env, seed=0), total_steps=64,
                    config=config, state=state, seed=5)  # fmt: skip
    assert metrics["losses/kl_coef"] in (0.4, 1.6, 0.8)  # β/2, 2β or β, from 0.8
    assert state.kl_coef == metrics["losses/kl_coef"]
    fixed = PPOConfig(**{**config.__dict__, "kl_target": None, "kl_coef": 0.1})
    state = TrainingState(kl_coef=0.8)
    metrics = train(env_id=env, policy=policy_for_env(env, seed=0), total_steps=64,
                    config=fixed, state=state, seed=5)  # fmt: skip
    assert metrics["losses/kl_coef"] == 0.1


def test_a_checkpoint_saved_without_training_state_loads_an_empty_one(tmp_path):
    path = checkpoints.save_checkpoint(policy_for_env("CartPole-v1", seed=0), tmp_path / "p.pt")
    assert checkpoints.load_training_state(path) == TrainingState()
