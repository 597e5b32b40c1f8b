"""Validation of a project's JSON config. Clients and benchmarks rely on these keys.

Each kind of project has its own keys; an unknown key or a bad value raises
:class:`InvalidConfig` naming the key. Missing keys take the defaults below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import InvalidConfig

MAX_K = 8


@dataclass(frozen=True)
class Key:
    default: Any
    check: Callable[[Any], str | None]  # returns an error message, or None when fine


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer from {lo} to {hi}, got {v!r}"
        return None

    return check


def _float_in(lo: float, hi: float, *, open_low: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok:
            ok = (lo < v if open_low else lo <= v) and v <= hi
        if not ok:
            bracket = "(" if open_low else "["
            return f"must be a number in {bracket}{lo}, {hi}], got {v!r}"
        return None

    return check


def _one_of(*options: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v not in options:
            return f"must be one of {', '.join(options)}; got {v!r}"
        return None

    return check


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def _optional_seed(v: Any) -> str | None:
    if v is None:
        return None
    return _int_in(0, 2**31 - 1)(v)


def _env_id(v: Any) -> str | None:
    if not isinstance(v, str) or not v:
        return f"must be a gymnasium environment id, got {v!r}"
    import gymnasium

    if v not in gymnasium.envs.registry:
        return f"{v!r} is not a registered gymnasium environment"
    return None


def _prompts(v: Any) -> str | None:
    if not isinstance(v, list) or not all(
        isinstance(p, str) and p.strip() and "\x00" not in p for p in v
    ):
        return "must be a list of non-empty strings without NUL characters"
    return None


def _model_dir(v: Any) -> str | None:
    if v in (None, ""):
        return None
    if not isinstance(v, str):
        return f"must be a path to a local model directory, got {v!r}"
    if not (Path(v) / "config.json").is_file():
        return f"{v!r} is not a model directory (no config.json there)"
    return None


TRAJECTORY_ALGORITHMS = (
    "reinforce",
    "a2c",
    "ppo",
    "policy_iteration",
    "value_iteration",
    "mc_control",
    "sarsa",
    "q_learning",
)
# Tabular algorithms (training.tabular) need Discrete observations and actions; the
# model-based ones also need the env's model, env.unwrapped.P (gymnasium's toy-text envs).
MODEL_BASED_ALGORITHMS = ("policy_iteration", "value_iteration")
TABULAR_ALGORITHMS = (*MODEL_BASED_ALGORITHMS, "mc_control", "sarsa", "q_learning")

# Deterministic FrozenLake: gymnasium's FrozenLake-v1 is slippery, and a config has no
# place for env kwargs, so the platform registers the non-slippery lakes under ids of their
# own (the time limits of FrozenLake-v1 and FrozenLake8x8-v1).
PLATFORM_ENVS = {
    "FrozenLakeNotSlippery-v1": ({"map_name": "4x4", "is_slippery": False}, 100),
    "FrozenLake8x8NotSlippery-v1": ({"map_name": "8x8", "is_slippery": False}, 200),
}


def register_platform_envs() -> None:
    """Register PLATFORM_ENVS with gymnasium (idempotent); done when this module loads."""
    import gymnasium

    for env_id, (kwargs, max_episode_steps) in PLATFORM_ENVS.items():
        if env_id not in gymnasium.envs.registry:
            gymnasium.register(
                id=env_id,
                entry_point="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
                kwargs=kwargs,
                max_episode_steps=max_episode_steps,
                reward_threshold=1.0,
            )


register_platform_envs()

TEXT_KEYS: dict[str, Key] = {
    "model_dir": Key(None, _model_dir),
    "prompts": Key([], _prompts),
    "k": Key(2, _int_in(2, MAX_K)),
    "temperature": Key(1.0, _float_in(0.0, 10.0, open_low=True)),
    "top_p": Key(1.0, _float_in(0.0, 1.0, open_low=True)),
    "max_new_tokens": Key(48, _int_in(1, 4096)),
    "algorithm": Key("dpo", _one_of("dpo", "ppo", "reinforce")),
    "beta": Key(0.1, _float_in(0.0, 100.0, open_low=True)),
    "comparisons_per_round": Key(32, _int_in(1, 100_000)),
    "seed": Key(0, _optional_seed),
}

TRAJECTORY_KEYS: dict[str, Key] = {
    "env_id": Key("Pendulum-v1", _env_id),
    "segment_length": Key(25, _int_in(2, 10_000)),
    "fps": Key(20, _int_in(1, 120)),
    "algorithm": Key("ppo", _one_of(*TRAJECTORY_ALGORITHMS)),
    "env_steps_per_round": Key(4096, _int_in(1, 100_000_000)),
    "comparisons_per_round": Key(16, _int_in(1, 100_000)),
    "selection": Key("disagreement", _one_of("random", "disagreement", "ucb")),
    "ensemble_size": Key(3, _int_in(1, 32)),
    "render_clips": Key(True, _is_bool),
    "gamma": Key(0.99, _float_in(0.0, 1.0)),
    "seed": Key(0, _optional_seed),
}

KEYS_BY_KIND = {"text": TEXT_KEYS, "trajectory": TRAJECTORY_KEYS}


def validate_project_config(kind: str, config: Any) -> dict[str, Any]:
    """Return ``config`` with defaults filled in, or raise InvalidConfig naming the bad key."""
    if kind not in KEYS_BY_KIND:
        raise InvalidConfig("kind", f"unknown project kind {kind!r}")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise InvalidConfig("(root)", "must be a JSON object")
    keys = KEYS_BY_KIND[kind]
    for name in config:
        if name not in keys:
            raise InvalidConfig(
                name,
                f"unknown key for a {kind} project; known keys: {', '.join(sorted(keys))}",
            )
    result = {}
    for name, key in keys.items():
        value = config.get(name, key.default)
        error = key.check(value)
        if error:
            raise InvalidConfig(name, error)
        result[name] = value
    if kind == "trajectory":
        _check_algorithm_fits_env(result["algorithm"], result["env_id"], result["gamma"])
        if result["selection"] == "ucb" and result["algorithm"] not in TABULAR_ALGORITHMS:
            raise InvalidConfig(
                "selection",
                "'ucb' pair selection is implemented for the tabular algorithms "
                f"({', '.join(TABULAR_ALGORITHMS)}); with {result['algorithm']!r} use "
                "'random' or 'disagreement'.",
            )
    return result


@lru_cache(maxsize=64)
def _env_interface(env_id: str) -> tuple[bool, bool]:
    """(Discrete observations and actions, a tabular model env.unwrapped.P) of an env."""
    import gymnasium

    env = gymnasium.make(env_id)
    try:
        discrete = isinstance(env.observation_space, gymnasium.spaces.Discrete) and isinstance(
            env.action_space, gymnasium.spaces.Discrete
        )
        return discrete, discrete and isinstance(getattr(env.unwrapped, "P", None), dict)
    finally:
        env.close()


def _check_algorithm_fits_env(algorithm: str, env_id: str, gamma: float) -> None:
    if algorithm not in TABULAR_ALGORITHMS:
        return
    if gamma >= 1.0:
        raise InvalidConfig(
            "gamma",
            f"{algorithm!r} optimises a learned reward, which may pay for looping forever; "
            "use a discount below 1 (0.9 suits FrozenLake).",
        )
    try:
        discrete, has_model = _env_interface(env_id)
    except Exception as exc:  # a registered env whose dependencies are missing, say
        raise InvalidConfig("env_id", f"{env_id!r} could not be created: {exc}") from None
    if algorithm in MODEL_BASED_ALGORITHMS and not has_model:
        raise InvalidConfig(
            "algorithm",
            f"{algorithm!r} needs the environment's model (env.unwrapped.P with Discrete "
            f"observations and actions), which {env_id!r} does not expose. Use a toy-text "
            "env (FrozenLake-v1, FrozenLakeNotSlippery-v1, CliffWalking-v1, Taxi-v4), or a "
            "model-free algorithm: mc_control, sarsa, q_learning for Discrete observations, "
            "reinforce, a2c, ppo otherwise.",
        )
    if not discrete:
        raise InvalidConfig(
            "algorithm",
            f"{algorithm!r} is tabular and needs Discrete observations and actions; "
            f"{env_id!r} has other spaces. Use reinforce, a2c or ppo.",
        )
