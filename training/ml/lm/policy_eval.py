"""How far a round moved the policy from the reference, on held-out prompts: the synthetic
teacher's win rate of the policy over the reference, and the sequence KL between them.

On each prompt x one response is sampled from each, y ~ π(·|x) and y' ~ π_ref(·|x)
(independent draws), and the lexicon teacher (text_teacher.py) prefers the higher score:
    win rate = mean_x [ 1(S(y) > S(y')) + ½ · 1(S(y) = S(y')) ],
with the standard error of that mean over prompts. The KL is estimated on the policy's
samples (Monte Carlo, as in Ziegler et al. 2019 and the PPO trainer's ``kl``):
    KL(π ‖ π_ref) ≈ mean_x [ log π(y|x) − log π_ref(y|x) ],   y ~ π(·|x),
each log-probability summed over the response's tokens at the sampling temperature. It is
exactly 0 when π_ref is π. Greedy decoding (temperature 0) scores at temperature 1.

The reference comes from ``use_reference()``, a context manager that yields it: a LoRA
policy's own base with its adapters switched off, or a model loaded only for this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.ml.lm.lm import (
    collate_prompt_response,
    decode_responses,
    encode_prompts,
    generate_response_ids,
    max_positions,
    response_logprobs,
)
from training.ml.lm.text_teacher import lexicon_score

WIN_RATE = "teacher/win_rate"
WIN_RATE_SE = "teacher/win_rate_se"
SEQUENCE_KL = "kl/sequence"
MEAN_SCORE = "teacher/mean_score"
REFERENCE_MEAN_SCORE = "teacher/reference_mean_score"
N_PROMPTS = "eval/n_prompts"


@dataclass(frozen=True)
class ReferenceComparison:
    """Per held-out prompt: the teacher's scores of the policy's and the reference's
    samples, and log π(y|x) − log π_ref(y|x) of the policy's sample."""

    policy_scores: np.ndarray  # (P,)
    reference_scores: np.ndarray  # (P,)
    log_ratios: np.ndarray  # (P,)

    def metrics(self) -> dict[str, float]:
        """The dashboard's names: teacher/win_rate (± teacher/win_rate_se), kl/sequence,
        teacher/mean_score (the policy's), teacher/reference_mean_score, eval/n_prompts."""
        win_rate, se = win_rate_of(self.policy_scores, self.reference_scores)
        return {
            WIN_RATE: win_rate,
            WIN_RATE_SE: se,
            SEQUENCE_KL: float(np.mean(self.log_ratios)),
            MEAN_SCORE: float(np.mean(self.policy_scores)),
            REFERENCE_MEAN_SCORE: float(np.mean(self.reference_scores)),
            N_PROMPTS: len(self.log_ratios),
        }


def win_rate_of(scores: Sequence[float], reference_scores: Sequence[float]) -> tuple[float, float]:
    """(mean of 1(s > s') + ½·1(s = s'), its standard error over the pairs): (P,), (P,).
    The standard error is s.d./√P with the sample s.d. (0 for a single pair)."""
    scores, reference_scores = np.asarray(scores, float), np.asarray(reference_scores, float)
    if scores.shape != reference_scores.shape or scores.size == 0:
        raise ValueError(
            f"Need as many policy as reference scores, at least one: got {scores.size} "
            f"and {reference_scores.size}."
        )
    outcomes = (scores > reference_scores) + 0.5 * (scores == reference_scores)  # (P,)
    se = float(np.std(outcomes, ddof=1) / math.sqrt(outcomes.size)) if outcomes.size > 1 else 0.0
    return float(outcomes.mean()), se


@torch.no_grad()
def _logprobs_of(
    model: PreTrainedModel,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    temperature: float,
    device: torch.device | str,
    batch_size: int,
) -> Tensor:
    """log π(y|x) of the given token ids, (N,), summed over the response's tokens."""
    chunks = []
    for start in range(0, len(prompt_ids), batch_size):
        batch = collate_prompt_response(
            prompt_ids=prompt_ids[start : start + batch_size],
            response_ids=response_ids[start : start + batch_size],
            pad_token_id=pad_token_id,
            max_length=max_positions(model),
            device=device,
        )
        chunks.append(response_logprobs(model=model, batch=batch, temperature=temperature))
    return torch.cat(chunks).float().cpu()


def compare_with_reference(
    *,
    policy: PreTrainedModel,
    use_reference: Callable[[], AbstractContextManager[PreTrainedModel]],
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    lexicon: Mapping[str, float],
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    progress: Callable[[float], None] | None = None,
) -> ReferenceComparison:
    """One sample per prompt from the policy (drawn from ``seed``) and one from the
    reference (``seed + 1``), their teacher scores, and the policy samples' log-ratios.
    The same seed gives the same figures. progress(fraction) after each of the three
    passes: the policy's samples, the reference's, the reference's scoring."""
    if not prompts:
        raise ValueError("Need at least one held-out prompt to compare with the reference.")
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    scoring_temperature = temperature if temperature > 0 else 1.0
    scoring = {"pad_token_id": tokenizer.pad_token_id, "temperature": scoring_temperature,
               "device": device, "batch_size": batch_size}  # fmt: skip
    prompt_ids = encode_prompts(tokenizer, prompts)
    if (limit := max_positions(policy)) is not None:  # as generate_response_ids cuts them
        prompt_ids = [ids[-max(1, limit - max_new_tokens) :] for ids in prompt_ids]

    def one_each(model: PreTrainedModel, sample_seed: int) -> list[list[int]]:
        ids = generate_response_ids(model=model, tokenizer=tokenizer, prompts=prompts, k=1,
                                    seed=sample_seed, device=device, batch_size=batch_size,
                                    **sampling)  # fmt: skip
        return [per_prompt[0] for per_prompt in ids]

    policy_ids = one_each(policy, seed)
    policy_logps = _logprobs_of(policy, prompt_ids, policy_ids, **scoring)
    if progress is not None:
        progress(1 / 3)
    with use_reference() as reference:
        reference_ids = one_each(reference, seed + 1)
        if progress is not None:
            progress(2 / 3)
        reference_logps = _logprobs_of(reference, prompt_ids, policy_ids, **scoring)
    if progress is not None:
        progress(1.0)

    def scores(ids: list[list[int]]) -> np.ndarray:
        return np.array([lexicon_score(text, lexicon) for text in decode_responses(tokenizer, ids)])

    return ReferenceComparison(
        policy_scores=scores(policy_ids),
        reference_scores=scores(reference_ids),
        log_ratios=(policy_logps - reference_logps).double().numpy(),
    )
