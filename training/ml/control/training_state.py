"""What a policy optimiser carries from one call to the next, so that the rounds of a loop
continue one training run instead of starting afresh: the Adam moments and step counts,
and PPO's adaptive KL coefficient β. It is saved in the policy's checkpoint beside the
weights (checkpoints.save_checkpoint(..., training_state=...)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class TrainingState:
    """Pass the same object to each call of an optimiser to continue; it is updated in
    place when the call returns. Empty (the default) means: start afresh."""

    optimizer: dict[str, Any] | None = None  # torch.optim.Optimizer.state_dict()
    kl_coef: float | None = None  # PPO's β after the last update

    def restore(self, optimizer: torch.optim.Optimizer, *, learning_rate: float) -> None:
        """Load the saved moments into ``optimizer``, keeping this call's learning rate (a
        config may change it between rounds)."""
        if self.optimizer is not None:
            optimizer.load_state_dict(copy.deepcopy(self.optimizer))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate

    def keep(self, optimizer: torch.optim.Optimizer, *, kl_coef: float | None = None) -> None:
        """Remember the optimizer's state (on the CPU) and β, for the next call."""
        self.optimizer = _to_cpu(copy.deepcopy(optimizer.state_dict()))
        if kl_coef is not None:
            self.kl_coef = float(kl_coef)

    def to_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "kl_coef": self.kl_coef}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainingState:
        data = data or {}
        return cls(optimizer=data.get("optimizer"), kl_coef=data.get("kl_coef"))


def resumed_adam(
    parameters, *, learning_rate: float, state: TrainingState | None, eps: float = 1e-8
) -> torch.optim.Adam:
    """An Adam optimiser over ``parameters`` that continues from ``state`` when given."""
    optimizer = torch.optim.Adam(parameters, lr=learning_rate, eps=eps)
    if state is not None:
        state.restore(optimizer, learning_rate=learning_rate)
    return optimizer


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value
