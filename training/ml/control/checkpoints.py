"""Saving and loading reward models and policies, with the config needed to rebuild them.

A checkpoint is a plain dict {"kind", "config", "state_dict"} written with torch.save (a
policy's may also hold its optimiser's TrainingState); it loads with
torch.load(weights_only=True), so reading one never runs pickled code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from training.ml.control.policies import ActorCritic, PolicyConfig
from training.ml.control.reward_models import RewardEnsemble, RewardModelConfig
from training.ml.control.training_state import TrainingState

_KINDS: dict[type, str] = {RewardEnsemble: "reward_ensemble", ActorCritic: "actor_critic"}


def save_checkpoint(
    obj: RewardEnsemble | ActorCritic,
    path: str | os.PathLike,
    *,
    training_state: TrainingState | None = None,
) -> Path:
    """Write obj's config and state_dict (and a policy's ``training_state``) to ``path``
    atomically: to a temporary file in the same folder, then os.replace, so a reader never
    sees half a file."""
    kind = _KINDS.get(type(obj))
    if kind is None:
        raise TypeError(
            f"Cannot checkpoint a {type(obj).__name__}: pass a RewardEnsemble or ActorCritic."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": kind,
        "config": obj.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in obj.state_dict().items()},
    }
    if training_state is not None:
        payload["training_state"] = training_state.to_dict()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: str | os.PathLike, *, kind: str) -> dict[str, Any]:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("kind") != kind:
        raise ValueError(f"{path} holds a {payload.get('kind')!r} checkpoint, not a {kind!r}.")
    return payload


def load_reward_ensemble(
    path: str | os.PathLike, *, device: torch.device | str = "cpu"
) -> RewardEnsemble:
    """A RewardEnsemble rebuilt from a save_checkpoint file, in eval mode on ``device``."""
    payload = _read(path, kind="reward_ensemble")
    ensemble = RewardEnsemble(RewardModelConfig.from_dict(payload["config"]))
    ensemble.load_state_dict(payload["state_dict"])
    return ensemble.to(device).eval()


def load_policy(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> ActorCritic:
    """An ActorCritic rebuilt from a save_checkpoint file, in eval mode on ``device``."""
    payload = _read(path, kind="actor_critic")
    policy = ActorCritic(PolicyConfig.from_dict(payload["config"]))
    policy.load_state_dict(payload["state_dict"])
    return policy.to(device).eval()


def load_training_state(path: str | os.PathLike) -> TrainingState:
    """The optimiser state saved with a policy (empty for one saved without)."""
    return TrainingState.from_dict(_read(path, kind="actor_critic").get("training_state"))
