"""Data-parallel training over the processes torchrun starts: each process holds the whole
model, takes its share of every global batch, and the processes sum their gradients, so
that one step is the step one process would take on the whole batch.

Alone (no process group initialised) every function here is the identity: the share is
the whole batch and sums are the values themselves, so a trainer written against it runs
unchanged in one process. Gradients are summed by all-reduce after backward rather than by
DistributedDataParallel's hooks: a process whose share of a short last batch is empty then
simply contributes zeros, without a forward pass of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

# All-reduce gradients in buckets of at most this many elements (fp32: 64 MiB), so that
# summing costs few messages but never a second copy of a large model's gradients.
BUCKET_ELEMENTS = 1 << 24


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def start_process_group(device: str) -> torch.device:
    """Join the process group that torchrun describes in the environment (RANK,
    WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and return this process's device:
    gloo on the CPU, NCCL on CUDA with one GPU per process (cuda:LOCAL_RANK)."""
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"Training over processes runs on cpu or cuda, not {device!r}.")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"Process {local_rank} has no GPU of its own: {torch.cuda.device_count()} "
                "visible; set processes to at most the number of GPUs."
            )
        here = torch.device("cuda", local_rank)
        torch.cuda.set_device(here)
        dist.init_process_group(backend="nccl", device_id=here)
        return here
    dist.init_process_group(backend="gloo")
    return torch.device("cpu")


def stop_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(indices: Sequence[int]) -> list[int]:
    """This process's part of a global batch: a contiguous slice (neighbours with one
    prompt mostly stay together), the first len % world processes one longer. Some are
    empty when the batch is shorter than the number of processes."""
    rank, world = rank_and_world()
    if world == 1:
        return list(indices)
    size, extra = divmod(len(indices), world)
    start = rank * size + min(rank, extra)
    return list(indices[start : start + size + (rank < extra)])


def summed(value: Tensor) -> Tensor:
    """``value`` summed over the processes (every process gets the sum); alone, itself."""
    if rank_and_world()[1] == 1:
        return value
    total = value.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def gathered(indices: Sequence[int], values: Tensor, n: int) -> Tensor:
    """The (n,) tensor of per-item values when each process computed ``values`` for its own
    ``indices`` (disjoint, covering 0..n−1 together); alone, ``values`` as they are."""
    if rank_and_world()[1] == 1:
        return values
    full = torch.zeros(n, dtype=values.dtype, device=values.device)
    full[torch.tensor(list(indices), dtype=torch.long, device=values.device)] = values
    return summed(full)


def sum_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each trainable parameter's gradient by its sum over the processes (a missing
    gradient counts as zeros); alone, nothing. Every process must call it at each step."""
    if rank_and_world()[1] == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[Tensor] = []
    for p in params:
        if bucket and (
            sum(g.numel() for g in bucket) + p.numel() > BUCKET_ELEMENTS
            or bucket[0].dtype != p.grad.dtype
        ):
            _sum_bucket(bucket)
            bucket = []
        bucket.append(p.grad)
    if bucket:
        _sum_bucket(bucket)


def _sum_bucket(grads: list[Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
