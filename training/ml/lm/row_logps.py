"""log π(y|x) of (prompt, response) token rows, each distinct row through the model once:
with gradient for a training batch, or without it for many rows at once (the reference's
scores, a closing pass). DPO scores its pairs' two rows with these, KTO its completions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import PreTrainedModel

from training.ml.lm.lm import (
    collate_prompt_response,
    max_positions,
    response_logprobs,
    unique_sequences,
)


def row_logps(
    *,
    model: PreTrainedModel,
    prompt_ids: Sequence[list[int]],
    response_ids: Sequence[list[int]],
    pad_token_id: int,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """log π(y|x) of each row: (B,), with gradient. The distinct rows go through the model
    in one forward pass."""
    if not prompt_ids:  # a process's empty share of a short batch (distributed.share)
        return torch.zeros(0, device=device)
    prompts, responses, index = unique_sequences(prompt_ids, response_ids)
    batch = collate_prompt_response(
        prompt_ids=prompts,
        response_ids=responses,
        pad_token_id=pad_token_id,
        max_length=max_positions(model),
        device=device,
    )
    logps = response_logprobs(model=model, batch=batch, dtype=dtype)  # (U,)
    return logps[torch.tensor(index, device=logps.device)]


@torch.no_grad()
def all_row_logps(
    *,
    model: PreTrainedModel,
    prompt_ids: Sequence[list[int]],
    response_ids: Sequence[list[int]],
    rows: int,
    pad_token_id: int,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """log π(y|x) of many rows without gradient: (N,). Each distinct row is scored once,
    shortest first (the least padding), ``rows`` a pass."""
    prompts, responses, index = unique_sequences(prompt_ids, response_ids)
    by_length = sorted(range(len(prompts)), key=lambda u: len(prompts[u]) + len(responses[u]))
    logps = torch.empty(len(prompts), device=device)  # (U,)
    for start in range(0, len(by_length), rows):
        chunk = by_length[start : start + rows]
        batch = collate_prompt_response(
            prompt_ids=[prompts[u] for u in chunk],
            response_ids=[responses[u] for u in chunk],
            pad_token_id=pad_token_id,
            max_length=max_positions(model),
            device=device,
        )
        logps[torch.tensor(chunk, device=device)] = response_logprobs(
            model=model, batch=batch, dtype=dtype
        )
    return logps[torch.tensor(index, dtype=torch.long, device=device)]
