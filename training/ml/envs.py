"""Making gymnasium environments, with the platform's own ids registered first.

gymnasium's FrozenLake-v1 is slippery and a project config has no place for env kwargs, so
the platform registers the deterministic lakes under ids of their own (with the time limits
of FrozenLake-v1 and FrozenLake8x8-v1). Every environment the training code makes comes
from :func:`make_env`, so those ids work in any process.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

PLATFORM_ENVS = {
    "FrozenLakeNotSlippery-v1": ({"map_name": "4x4", "is_slippery": False}, 100),
    "FrozenLake8x8NotSlippery-v1": ({"map_name": "8x8", "is_slippery": False}, 200),
}


def register_platform_envs() -> None:
    """Register PLATFORM_ENVS with gymnasium (idempotent)."""
    for env_id, (kwargs, max_episode_steps) in PLATFORM_ENVS.items():
        if env_id not in gym.envs.registry:
            gym.register(
                id=env_id,
                entry_point="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
                kwargs=kwargs,
                max_episode_steps=max_episode_steps,
                reward_threshold=1.0,
            )


def is_registered(env_id: str) -> bool:
    register_platform_envs()
    return env_id in gym.envs.registry


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)``, the platform's ids included."""
    register_platform_envs()
    return gym.make(env_id, **kwargs)


def env_interface(env_id: str) -> tuple[bool, bool]:
    """(Discrete observations and actions, a tabular model env.unwrapped.P) of an env."""
    env = make_env(env_id)
    try:
        discrete = isinstance(env.observation_space, gym.spaces.Discrete) and isinstance(
            env.action_space, gym.spaces.Discrete
        )
        return discrete, discrete and isinstance(getattr(env.unwrapped, "P", None), dict)
    finally:
        env.close()
