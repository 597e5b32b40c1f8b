"""Advantage actor-critic with the one-step TD error as the advantage
(Sutton & Barto 2018, §13.5 "one-step actor-critic"; synchronous, batched over sub-envs as
in A2C, Mnih et al. 2016).

Every num_steps steps of num_envs sub-envs:
    δ_t = r_t + γ V(s_{t+1}) (1 − terminated_t) − V(s_t)   (TD error, S&B eq. 13.14)
    L^π = −mean_t [ δ_t ∇ log π(a_t|s_t) ]                  (δ_t as a constant advantage)
    L^V = mean_t ½ δ_t²                                     (semi-gradient TD(0))
A time-limit truncation still bootstraps from its last state s_{t+1}; only a true
termination makes V(s_{t+1}) zero.

The policy learns from reward_fn (the learned r̂, normalised) or, with reward_fn=None, from
the environment's own reward; charts/episodic_return is always the true return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from training.ml.control.experience import RewardFn, VectorRunner, training_rewards
from training.ml.control.policies import ActorCritic
from training.ml.control.training_state import TrainingState, resumed_adam
from training.ml.seeding import torch_seeded


@dataclass(frozen=True)
class A2CConfig:
    num_envs: int = 8
    num_steps: int = 8  # steps per sub-env between updates
    gamma: float = 0.99
    learning_rate: float = 3e-3  # defaults tuned on CartPole-v1 (tests/ml)
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    normalize_advantages: bool = False


def train_a2c(
    *,
    env_id: str,
    policy: ActorCritic,
    reward_fn: RewardFn | None = None,
    total_steps: int,
    config: A2CConfig | None = None,
    state: TrainingState | None = None,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """Train ``policy`` in place (moved to ``device``) for about total_steps env steps.

    With ``state``, training continues from the optimiser state it holds (a previous
    round's) and leaves the new one there. Returns the last update's losses and the run's
    charts/* metrics."""
    config = config or A2CConfig()
    runner = VectorRunner(env_id=env_id, num_envs=config.num_envs, seed=seed, device=device)
    runner.check_policy(policy)
    policy.to(device).train()
    optimizer = resumed_adam(policy.parameters(), learning_rate=config.learning_rate, state=state)
    num_iterations = max(1, total_steps // (config.num_envs * config.num_steps))
    learned_reward_sum, learned_reward_count = 0.0, 0
    metrics: dict[str, float] = {}

    try:
        with torch_seeded(seed, device=device):
            for iteration in range(num_iterations):
                rollout = runner.collect(policy, num_steps=config.num_steps)
                rewards = training_rewards(
                    reward_fn=reward_fn,
                    observations=rollout.obs,
                    env_actions=rollout.env_actions,
                    env_rewards=rollout.env_rewards,
                )  # (S, E)
                learned_reward_sum += float(rewards.sum())
                learned_reward_count += rewards.numel()

                obs = rollout.obs.flatten(0, 1)  # (B, obs_dim)
                actions = rollout.actions.flatten(0, 1)
                logprob, entropy, value = policy.evaluate(obs, actions)  # (B,) each
                with torch.no_grad():
                    next_value = policy.value(rollout.next_obs.flatten(0, 1))  # (B,)

                # TD error, S&B eq. 13.14; the target r + γV(s') is held constant
                not_terminal = 1.0 - rollout.terminated.flatten()
                td_target = rewards.flatten() + config.gamma * next_value * not_terminal
                delta = td_target - value  # (B,)

                advantages = delta.detach()
                if config.normalize_advantages and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                # Actor: −δ log π(a|s), S&B §13.5
                policy_loss = -(logprob * advantages).mean()
                # Critic: semi-gradient TD(0), ½ δ²
                value_loss = 0.5 * delta.square().mean()
                entropy_bonus = entropy.mean()

                loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy_bonus
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                optimizer.step()

                metrics = {
                    "losses/policy_loss": policy_loss.item(),
                    "losses/value_loss": value_loss.item(),
                    "losses/entropy": entropy_bonus.item(),
                }
                if progress is not None:
                    progress((iteration + 1) / num_iterations)
    finally:
        runner.close()
    if state is not None:
        state.keep(optimizer)

    return {
        **metrics,
        **runner.stats.metrics(),
        "charts/mean_learned_reward": learned_reward_sum / max(learned_reward_count, 1),
        "charts/env_steps": float(runner.env_steps),
    }
