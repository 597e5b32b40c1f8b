"""Where a step's tensors live and what its forward passes compute in.

A project's ``config.device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``) says where its
steps run; ``auto`` defers to the worker's TRAINING_DEVICE setting, whose own ``auto`` is
CUDA when torch sees a GPU there, else the CPU. ``config.dtype`` (``auto`` | ``float32`` |
``bfloat16``) is what a language model's forward passes compute in, under autocast
(training.ml.lm.lm.forward_dtype); trajectory projects train in fp32 whatever it says
(training/kinds/config.py). Asking for what the worker lacks fails the step, saying which
key asked and which worker it ran on, before any work is done.

config.device governs the train queue's steps. The render queue's step
(generate_comparisons) runs on its worker's TRAINING_DEVICE: GPU workers serve the train
queue only, and the render queue's CPU workers must not fail a project that asks for cuda.

The trainers in training.ml take the device and dtype as arguments; this module is the
one place that reads them from the config and the setting.
"""

from __future__ import annotations

import socket
from typing import Any

import torch
from django.conf import settings

from core.errors import InvalidInput


def _worker() -> str:
    return f"worker {socket.gethostname()!r}"


def step_device(config: Any) -> torch.device:
    """The torch device of a train-queue step (fit_reward_model, improve_policy, an
    arena's sampling) of a project whose typed config is ``config``: config.device, or for
    auto worker_device().

    InvalidInput, naming the key (config.device, or the TRAINING_DEVICE setting when the
    config says auto) and the worker, when CUDA is asked for on a worker without it or a
    GPU index it does not have."""
    if config.device == "auto":
        return worker_device()
    fix = (
        "Set config.device to 'auto' or 'cpu', or serve the train queue from a worker with "
        "a GPU (docker-compose.yml's worker-gpu)."
    )
    return _resolved(config.device, source="config.device", fix=fix)


def worker_device() -> torch.device:
    """The device this worker's TRAINING_DEVICE setting names (its auto: CUDA when torch
    sees a GPU, else the CPU). The render queue's step, generate_comparisons, runs on it
    whatever config.device says: that queue's workers are the CPU machines (GPU workers
    take the train queue only, docker-compose.yml)."""
    fix = "Set this worker's TRAINING_DEVICE to auto or cpu."
    return _resolved(settings.TRAINING_DEVICE, source="the TRAINING_DEVICE setting", fix=fix)


def _resolved(asked: str, *, source: str, fix: str) -> torch.device:
    if asked == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(asked)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise InvalidInput(
            f"{source} is {asked!r}, but {_worker()} has no CUDA device (torch "
            f"{torch.__version__}). {fix}"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise InvalidInput(
            f"{source} is {asked!r}, but {_worker()} has {torch.cuda.device_count()} CUDA "
            f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}. {fix}"
        )
    return device


def step_dtype(config: Any, device: torch.device) -> str:
    """What a language model's forward passes compute in on ``device``: "bfloat16" or
    "float32" (pass it as the trainers' dtype; lm.forward_dtype makes it a torch.dtype).

    ``auto`` is bf16 where the device multiplies bf16 in hardware (lm.native_bf16), else
    fp32. An explicit ``bfloat16`` is honoured on a CPU without it (emulated, slower) but
    is InvalidInput on a GPU without bf16 (autocast refuses it there)."""
    from training.ml.lm.lm import native_bf16  # transformers: only text steps pay for it

    if config.dtype == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    if config.dtype == "bfloat16" and device.type == "cuda" and not native_bf16(device):
        raise InvalidInput(
            f"config.dtype is 'bfloat16', but {_worker()}'s {device} does not support bf16 "
            "(it needs an Ampere or newer GPU). Set config.dtype to 'float32' or 'auto'."
        )
    return config.dtype
