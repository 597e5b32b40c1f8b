"""REINFORCE with a learned baseline (Williams 1992; Sutton & Barto 2018, §13.4).

Each update plays one full episode in each of num_envs sub-envs with the current policy and
uses the Monte-Carlo return from every step:
    G_t = Σ_{k≥t} γ^{k−t} r_k                          (discounted return to episode end)
    ∇J ≈ mean_t [ (G_t − V(s_t)) ∇ log π(a_t|s_t) ]      (S&B eq. 13.11, without γ^t)
    L^V = mean_t ½ (G_t − V(s_t))²                      (the baseline's regression)
The baseline only reduces variance; it is not bootstrapped from, so the estimate stays
unbiased. A sub-env whose episode ended waits (its later steps are not used) until every
sub-env has finished, so each batch is exactly num_envs on-policy episodes.

The policy learns from reward_fn (the learned r̂, normalised) or, with reward_fn=None, from
the environment's own reward; charts/episodic_return is always the true return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from training.ml.control.experience import RewardFn, VectorRunner, training_rewards
from training.ml.control.policies import ActorCritic
from training.ml.control.spaces import as_tensor, to_env_actions
from training.ml.control.training_state import TrainingState, resumed_adam
from training.ml.seeding import torch_seeded


@dataclass(frozen=True)
class ReinforceConfig:
    num_envs: int = 8  # episodes per update
    gamma: float = 0.99
    learning_rate: float = 3e-3  # defaults tuned on CartPole-v1 (tests/ml)
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    normalize_advantages: bool = True  # a common variance reduction on top of the baseline


def discounted_returns(*, rewards: Tensor, dones: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + γ (1 − done_t) G_{t+1} over (S, E) step-major arrays → (S, E)."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])  # (E,)
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * (1.0 - dones[t]) * running
        returns[t] = running
    return returns


def _play_one_episode_each(runner: VectorRunner, policy: ActorCritic) -> dict[str, Tensor]:
    """Step until every sub-env has finished one episode (each starting from a fresh one).

    Returns (S, E, ...) stacks and a (S, E) mask of the steps that belong to those
    episodes; S is the longest episode's length."""
    runner.restart_episodes()  # every episode of the batch is played by this policy
    steps: list[tuple[Tensor, ...]] = []
    active = torch.ones(runner.num_envs, device=runner.device)  # (E,)
    while bool(active.any()):
        obs = runner.encoded_obs()  # (E, obs_dim)
        actions, _, _ = policy.act(obs)
        env_actions = to_env_actions(actions, runner.action_spec)
        rewards, _, _, dones = runner.step(env_actions)
        steps.append(
            (obs, actions, as_tensor(env_actions, device=runner.device), rewards, dones, active)
        )
        active = active * (1.0 - dones)
    obs, actions, env_actions, env_rewards, dones, mask = (
        torch.stack(column) for column in zip(*steps, strict=True)
    )
    return {
        "obs": obs,
        "actions": actions,
        "env_actions": env_actions,
        "env_rewards": env_rewards,
        "dones": dones,
        "mask": mask,
    }


def train_reinforce(
    *,
    env_id: str,
    policy: ActorCritic,
    reward_fn: RewardFn | None = None,
    total_steps: int,
    config: ReinforceConfig | None = None,
    state: TrainingState | None = None,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """Train ``policy`` in place (moved to ``device``) until about total_steps env steps
    (counting every sub-env's steps, including those of finished sub-envs waiting).

    With ``state``, training continues from the optimiser state it holds (a previous
    round's) and leaves the new one there. Returns the last update's losses and the run's
    charts/* metrics."""
    config = config or ReinforceConfig()
    runner = VectorRunner(env_id=env_id, num_envs=config.num_envs, seed=seed, device=device)
    runner.check_policy(policy)
    policy.to(device).train()
    optimizer = resumed_adam(policy.parameters(), learning_rate=config.learning_rate, state=state)
    learned_reward_sum, learned_reward_count = 0.0, 0
    metrics: dict[str, float] = {}

    try:
        with torch_seeded(seed, device=device):
            while runner.env_steps < total_steps:
                batch = _play_one_episode_each(runner, policy)
                mask = batch["mask"]  # (S, E): 1 on the steps of this batch's episodes
                rewards = training_rewards(
                    reward_fn=reward_fn,
                    observations=batch["obs"],
                    env_actions=batch["env_actions"],
                    env_rewards=batch["env_rewards"],
                )  # (S, E)
                learned_reward_sum += float((rewards * mask).sum())
                learned_reward_count += int(mask.sum())

                # Monte-Carlo return of each step, to the end of its episode
                returns = discounted_returns(
                    rewards=rewards * mask, dones=batch["dones"], gamma=config.gamma
                )  # (S, E)

                used = mask.flatten().bool()  # (S·E,) → the N steps of real episodes
                obs = batch["obs"].flatten(0, 1)[used]
                actions = batch["actions"].flatten(0, 1)[used]
                returns = returns.flatten()[used]  # (N,)
                logprob, entropy, value = policy.evaluate(obs, actions)

                advantages = (returns - value).detach()  # G_t − V(s_t)
                if config.normalize_advantages and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                # REINFORCE with baseline, S&B eq. 13.11
                policy_loss = -(logprob * advantages).mean()
                # Baseline regression onto the Monte-Carlo return
                value_loss = 0.5 * (returns - value).square().mean()
                entropy_bonus = entropy.mean()

                loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy_bonus
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

                metrics = {
                    "losses/policy_loss": policy_loss.item(),
                    "losses/value_loss": value_loss.item(),
                    "losses/entropy": entropy_bonus.item(),
                }
                if progress is not None:
                    progress(min(runner.env_steps / total_steps, 1.0))
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
