"""Checkpoints hold CPU tensors and load on any device: one written on a GPU worker loads on
a CPU-only one (torch.load's map_location), so rounds may move between workers."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
import torch.serialization as serialization

from training.ml.control import checkpoints
from training.ml.control.policies import policy_for_env
from training.ml.control.reward_models import reward_ensemble_for_env

FAKE = "cuda:0"


@contextmanager
def tagged_as_gpu_tensors():
    """Within it, torch.save tags every storage with the location "cuda:0", as it tags a
    checkpoint written from GPU tensors; without CUDA, only map_location loads the file."""
    entry = (1, lambda storage: FAKE, lambda obj, location: None)  # before the CPU's tagger
    serialization._package_registry.insert(0, entry)
    try:
        yield
    finally:
        serialization._package_registry.remove(entry)


def test_a_checkpoint_stores_cpu_tensors_and_reloads_equal(tmp_path):
    policy = policy_for_env("Pendulum-v1", seed=3)
    path = checkpoints.save_checkpoint(policy, tmp_path / "policy.pt")

    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
    reloaded = checkpoints.load_policy(path, device=torch.device("cpu"))
    for key, value in policy.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks loading without CUDA")
def test_a_checkpoint_of_gpu_tensors_loads_on_a_cpu_only_worker(tmp_path):
    ensemble = reward_ensemble_for_env("Pendulum-v1", n_members=2, seed=1)
    path = tmp_path / "reward.pt"
    with tagged_as_gpu_tensors(), open(path, "wb") as f:  # save_checkpoint's payload
        torch.save(
            {
                "kind": "reward_ensemble",
                "config": ensemble.config.to_dict(),
                "state_dict": ensemble.state_dict(),
            },
            f,
        )

    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, weights_only=True)  # no map_location: it wants the GPU back
    reloaded = checkpoints.load_reward_ensemble(path)  # map_location="cpu"

    assert next(reloaded.parameters()).device.type == "cpu"
    for key, value in ensemble.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value)
