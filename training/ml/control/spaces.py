"""What a network sees of a gymnasium environment's spaces, and how it is encoded.

Observations become flat float32 vectors (a Discrete observation becomes a one-hot vector);
actions are encoded for the reward model (a Discrete action becomes one-hot) and decoded
for the environment (a Box action is clipped to its bounds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from training.ml.envs import make_env


@dataclass(frozen=True)
class ActionSpec:
    """An action space as the networks see it.

    discrete: True for gymnasium.spaces.Discrete (actions are indices 0..n-1), False for a
    one-dimensional Box (actions are float vectors of length ``dim``).
    dim: the number of actions (discrete) or the action vector's length (continuous).
    low, high: the Box's bounds (continuous only); actions are clipped to them when stepping.
    """

    discrete: bool
    dim: int
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    @property
    def encoded_dim(self) -> int:
        """Width of an encoded action: the one-hot size, or the action vector's length."""
        return self.dim

    def to_dict(self) -> dict[str, Any]:
        return {
            "discrete": self.discrete,
            "dim": self.dim,
            "low": list(self.low) if self.low is not None else None,
            "high": list(self.high) if self.high is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        low, high = data.get("low"), data.get("high")
        return cls(
            discrete=bool(data["discrete"]),
            dim=int(data["dim"]),
            low=tuple(float(v) for v in low) if low is not None else None,
            high=tuple(float(v) for v in high) if high is not None else None,
        )


def action_spec_of(space: gym.Space) -> ActionSpec:
    """The ActionSpec of a gymnasium action space (Discrete or one-dimensional Box)."""
    if isinstance(space, gym.spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(f"Discrete action spaces must start at 0, got start={space.start}.")
        return ActionSpec(discrete=True, dim=int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return ActionSpec(
            discrete=False,
            dim=int(space.shape[0]),
            low=tuple(float(v) for v in space.low),
            high=tuple(float(v) for v in space.high),
        )
    raise ValueError(
        f"Unsupported action space {space!r}: use an environment with Discrete or "
        "one-dimensional Box actions."
    )


def observation_dim_of(space: gym.Space) -> int:
    """Length of the flat float vector that ``encode_observations`` makes of this space."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise ValueError(
        f"Unsupported observation space {space!r}: use an environment with Box or "
        "Discrete observations."
    )


def env_spaces(env_id: str) -> tuple[int, ActionSpec]:
    """(observation dim, ActionSpec) of a registered gymnasium environment."""
    env = make_env(env_id)
    try:
        return observation_dim_of(env.observation_space), action_spec_of(env.action_space)
    finally:
        env.close()


def encode_observations(observations: np.ndarray, space: gym.Space) -> np.ndarray:
    """A batch of raw observations (N, ...) → float32 (N, obs_dim); Discrete → one-hot."""
    observations = np.asarray(observations)
    n = observations.shape[0]
    if isinstance(space, gym.spaces.Discrete):
        one_hot = np.zeros((n, int(space.n)), dtype=np.float32)
        one_hot[np.arange(n), observations.astype(np.int64) - int(space.start)] = 1.0
        return one_hot
    return observations.reshape(n, -1).astype(np.float32)


def encode_actions(actions: Tensor, spec: ActionSpec) -> Tensor:
    """Actions as the reward model reads them: (...,) indices → (..., n) one-hot for
    Discrete; (..., act_dim) floats unchanged for Box."""
    if spec.discrete:
        return F.one_hot(actions.long(), spec.dim).float()
    return actions.float()


def to_env_actions(actions: Tensor, spec: ActionSpec) -> np.ndarray:
    """Policy actions (N,) or (N, act_dim) → what the vector env's step() takes.

    Box actions are clipped to the space's bounds (a Gaussian sample may fall outside)."""
    actions = actions.detach().cpu().numpy()
    if spec.discrete:
        return actions.astype(np.int64)
    low = np.asarray(spec.low, dtype=np.float32)
    high = np.asarray(spec.high, dtype=np.float32)
    return np.clip(actions, low, high).astype(np.float32)


def as_tensor(array: np.ndarray, *, device: torch.device | str) -> Tensor:
    """A numpy batch as a tensor on ``device`` (float32 for floats, int64 for integers)."""
    if np.issubdtype(array.dtype, np.integer):
        return torch.as_tensor(array, dtype=torch.int64, device=device)
    return torch.as_tensor(array, dtype=torch.float32, device=device)
