"""Reproducible randomness without touching the process's global RNG state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_seeded(seed: int, *, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with torch's RNG seeded to ``seed``, restoring the caller's RNG after.

    Forks the CPU generator, and the CUDA generator of ``device`` when it is a GPU, so that
    weight initialisation, dropout and action sampling inside are repeatable while the
    caller's own random stream is left as it was."""
    device = torch.device(device)
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield
