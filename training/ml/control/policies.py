"""An actor-critic MLP: a Categorical head for Discrete actions, a diagonal Gaussian head
for Box actions, and a separate value network V(s).

Layout and initialisation follow CleanRL's ppo.py / ppo_continuous_action.py (orthogonal
weights, tanh activations, a state-independent log-std for the Gaussian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from training.ml.control.spaces import ActionSpec, env_spaces
from training.ml.seeding import torch_seeded


@dataclass(frozen=True)
class PolicyConfig:
    obs_dim: int
    action_spec: ActionSpec
    hidden_sizes: tuple[int, ...] = (64, 64)
    initial_log_std: float = 0.0  # Gaussian head only

    def to_dict(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "action_spec": self.action_spec.to_dict(),
            "hidden_sizes": list(self.hidden_sizes),
            "initial_log_std": self.initial_log_std,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        return cls(
            obs_dim=int(data["obs_dim"]),
            action_spec=ActionSpec.from_dict(data["action_spec"]),
            hidden_sizes=tuple(int(h) for h in data["hidden_sizes"]),
            initial_log_std=float(data.get("initial_log_std", 0.0)),
        )


def _layer(in_dim: int, out_dim: int, *, gain: float = float(np.sqrt(2))) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int, *, out_gain: float):
    layers: list[nn.Module] = []
    for hidden in hidden_sizes:
        layers += [_layer(in_dim, hidden), nn.Tanh()]
        in_dim = hidden
    layers.append(_layer(in_dim, out_dim, gain=out_gain))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """π(a|s) and V(s) over encoded observations (N, obs_dim)."""

    def __init__(self, config: PolicyConfig, *, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        spec = config.action_spec
        with torch_seeded(seed):
            self.critic = _mlp(config.obs_dim, config.hidden_sizes, 1, out_gain=1.0)
            # A small last-layer gain starts the policy close to uniform / zero-mean.
            self.actor = _mlp(config.obs_dim, config.hidden_sizes, spec.dim, out_gain=0.01)
        if not spec.discrete:
            self.log_std = nn.Parameter(torch.full((spec.dim,), config.initial_log_std))

    def distribution(self, obs: Tensor) -> Distribution:
        """π(·|s) for obs (N, obs_dim): batch shape (N,), event shape () or (act_dim,)."""
        out = self.actor(obs)  # (N, n_actions) logits or (N, act_dim) means
        if self.config.action_spec.discrete:
            return Categorical(logits=out, validate_args=False)
        std = self.log_std.exp().expand_as(out)
        return Independent(Normal(out, std, validate_args=False), 1, validate_args=False)

    def value(self, obs: Tensor) -> Tensor:
        """V(s): (N, obs_dim) → (N,)."""
        return self.critic(obs).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: Tensor, *, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Sample (or, deterministic, take the mode of) an action for each observation.

        Returns actions (N,) int64 or (N, act_dim) float — unclipped; the caller clips Box
        actions to the bounds when stepping (spaces.to_env_actions) — log π(a|s) (N,)
        and V(s) (N,)."""
        dist = self.distribution(obs)
        if deterministic:
            actions = dist.mode
        else:
            actions = dist.sample()
        return actions, dist.log_prob(actions), self.value(obs)

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log π(a|s) (N,), entropy H[π(·|s)] (N,), V(s) (N,) — with gradients."""
        dist = self.distribution(obs)
        return dist.log_prob(actions), dist.entropy(), self.value(obs)


def policy_for_env(
    env_id: str, *, hidden_sizes: tuple[int, ...] = (64, 64), seed: int = 0
) -> ActorCritic:
    """A freshly initialised ActorCritic sized for a gymnasium environment."""
    obs_dim, action_spec = env_spaces(env_id)
    config = PolicyConfig(obs_dim=obs_dim, action_spec=action_spec, hidden_sizes=hidden_sizes)
    return ActorCritic(config, seed=seed)
