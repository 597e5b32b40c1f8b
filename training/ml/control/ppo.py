"""Proximal Policy Optimization with a clipped objective and a KL penalty
(Schulman et al. 2017, "Proximal Policy Optimization Algorithms"), GAE(λ) advantages
(Schulman et al. 2016). Layout after CleanRL's ppo.py.

The loss per minibatch, each term on its own line below:
    L = −L^CLIP (eq. 7) + β·KL(π_old ‖ π) (eq. 8) + c_v·L^VF − c_e·H[π]      (eq. 9)
β is adaptive by default (§4): after each update, with d = KL(π_old ‖ π_new) measured on
the batch, β ← β/2 if d < d_targ/1.5 and β ← 2β if d > 1.5·d_targ. kl_target=None keeps β
fixed at kl_coef; kl_coef=0 gives plain clipped PPO.

The policy learns from reward_fn (the learned r̂, normalised) or, with reward_fn=None, from
the environment's own reward; charts/episodic_return is always the true return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.ml.control.experience import RewardFn, VectorRunner, training_rewards
from training.ml.control.policies import ActorCritic
from training.ml.control.training_state import TrainingState, resumed_adam
from training.ml.seeding import torch_seeded


@dataclass(frozen=True)
class PPOConfig:
    num_envs: int = 4
    num_steps: int = 128  # steps per sub-env per rollout; batch = num_envs · num_steps
    gamma: float = 0.99
    gae_lambda: float = 0.95
    learning_rate: float = 2.5e-3  # defaults tuned on CartPole-v1 (tests/ml)
    update_epochs: int = 4
    num_minibatches: int = 4
    clip_coef: float = 0.2  # ε of eq. 7
    kl_coef: float = 0.1  # β of eq. 8 (its starting value when adaptive)
    kl_target: float | None = 0.01  # d_targ of §4; None: fixed β
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True


def generalized_advantages(
    *,
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: float,
    gae_lambda: float,
) -> Tensor:
    """GAE(λ), Schulman et al. 2016, eq. 16: Â_t = Σ_l (γλ)^l δ_{t+l}, cut at episode ends.

    δ_t = r_t + γ V(s_{t+1}) (1 − terminated_t) − V(s_t): a time-limit truncation still
    bootstraps from its last state. All (S, E); returns (S, E)."""
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values  # (S, E)
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])  # (E,)
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * gae_lambda * (1.0 - dones[t]) * running
        advantages[t] = running
    return advantages


def train_ppo(
    *,
    env_id: str,
    policy: ActorCritic,
    reward_fn: RewardFn | None = None,
    total_steps: int,
    config: PPOConfig | None = None,
    state: TrainingState | None = None,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """Train ``policy`` in place (moved to ``device``) for about total_steps env steps.

    With ``state``, training continues from the optimiser state it holds (a previous
    round's) and leaves the new one there. Returns the last update's losses and the run's
    charts/* metrics."""
    config = config or PPOConfig()
    runner = VectorRunner(env_id=env_id, num_envs=config.num_envs, seed=seed, device=device)
    runner.check_policy(policy)
    policy.to(device).train()
    optimizer = resumed_adam(
        policy.parameters(), learning_rate=config.learning_rate, state=state, eps=1e-5
    )
    batch_size = config.num_envs * config.num_steps
    minibatch_size = max(1, batch_size // config.num_minibatches)
    num_iterations = max(1, total_steps // batch_size)
    # β continues from the last call when adaptive; a fixed β is the config's.
    resumed = state is not None and state.kl_coef is not None and config.kl_target is not None
    kl_coef = state.kl_coef if resumed else config.kl_coef
    rng = np.random.default_rng(seed)
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

                with torch.no_grad():
                    next_values = policy.value(rollout.next_obs)  # (S, E)
                    advantages = generalized_advantages(
                        rewards=rewards,
                        values=rollout.values,
                        next_values=next_values,
                        terminated=rollout.terminated,
                        dones=rollout.dones,
                        gamma=config.gamma,
                        gae_lambda=config.gae_lambda,
                    )
                    returns = advantages + rollout.values  # targets for V, (S, E)

                # Flatten (S, E, ...) → (B, ...).
                b_obs = rollout.obs.flatten(0, 1)
                b_actions = rollout.actions.flatten(0, 1)
                b_logprobs = rollout.logprobs.flatten(0, 1)
                b_advantages = advantages.flatten(0, 1)
                b_returns = returns.flatten(0, 1)

                clipfracs = []
                for _ in range(config.update_epochs):
                    order = torch.as_tensor(rng.permutation(batch_size), device=device)
                    for start in range(0, batch_size, minibatch_size):
                        mb = order[start : start + minibatch_size]
                        new_logprob, entropy, new_value = policy.evaluate(b_obs[mb], b_actions[mb])
                        log_ratio = new_logprob - b_logprobs[mb]
                        ratio = log_ratio.exp()  # r_t(θ) = π(a|s) / π_old(a|s)

                        mb_advantages = b_advantages[mb]
                        if config.normalize_advantages and len(mb) > 1:
                            mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                                mb_advantages.std() + 1e-8
                            )

                        # L^CLIP, eq. 7: E[min(r Â, clip(r, 1 − ε, 1 + ε) Â)]
                        surrogate = ratio * mb_advantages
                        clipped = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
                        policy_loss = -torch.min(surrogate, clipped * mb_advantages).mean()
                        # KL(π_old ‖ π) with samples from π_old: E[(r − 1) − log r]
                        # (Schulman 2020, "Approximating KL Divergence", k3); penalty of eq. 8
                        approx_kl = ((ratio - 1) - log_ratio).mean()
                        # L^VF, eq. 9: (V(s) − V^targ)²
                        value_loss = 0.5 * (new_value - b_returns[mb]).square().mean()
                        entropy_bonus = entropy.mean()

                        loss = (
                            policy_loss
                            + kl_coef * approx_kl
                            + config.vf_coef * value_loss
                            - config.ent_coef * entropy_bonus
                        )
                        optimizer.zero_grad()
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                        optimizer.step()
                        clipfracs.append(
                            float(((ratio - 1.0).abs() > config.clip_coef).float().mean())
                        )

                # d = KL(π_old ‖ π_new) over the whole batch, after the update.
                with torch.no_grad():
                    new_logprob, _, _ = policy.evaluate(b_obs, b_actions)
                    log_ratio = new_logprob - b_logprobs
                    batch_kl = float(((log_ratio.exp() - 1) - log_ratio).mean())
                # Adaptive β, Schulman et al. 2017, §4.
                if config.kl_target is not None:
                    if batch_kl < config.kl_target / 1.5:
                        kl_coef /= 2
                    elif batch_kl > config.kl_target * 1.5:
                        kl_coef *= 2

                metrics = {
                    "losses/policy_loss": policy_loss.item(),
                    "losses/value_loss": value_loss.item(),
                    "losses/entropy": entropy_bonus.item(),
                    "losses/approx_kl": batch_kl,
                    "losses/clipfrac": float(np.mean(clipfracs)),
                    "losses/kl_coef": kl_coef,
                }
                if progress is not None:
                    progress((iteration + 1) / num_iterations)
    finally:
        runner.close()
    if state is not None:
        state.keep(optimizer, kl_coef=kl_coef)

    return {
        **metrics,
        **runner.stats.metrics(),
        "charts/mean_learned_reward": learned_reward_sum / max(learned_reward_count, 1),
        "charts/env_steps": float(runner.env_steps),
    }
