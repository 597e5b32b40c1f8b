"""Policy gradient for a language model against a reward r_θ(x, y) with a KL penalty to a
reference policy: the RL step of InstructGPT (Ouyang et al. 2022, eq. 2, without the
pretraining-mix term),
    objective(φ) = E_{(x, y) ~ π_φ} [ r_θ(x, y) − β log π_φ(y|x) / π_ref(y|x) ].
π_ref is the round's starting policy, frozen (lm.frozen_copy); for a LoRA policy, its base
with the adapters switched off (lora.reference_of), the same weights and no copy.

Each iteration samples K responses y to each of a few prompts x, and builds per-token
rewards as TRL and Ziegler et al. 2019 do: on response token t
    r_t = −β (log π_φ(y_t | x, y_<t) − log π_ref(y_t | x, y_<t))   (the KL penalty)
plus r_θ(x, y) on the last token. The sequence's return (γ = 1) is
    R(x, y) = Σ_t r_t = r_θ(x, y) − β Σ_t KL_t.
The baseline is the leave-one-out mean of the other K − 1 samples of the same prompt
(RLOO: Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics", eq. 5):
    A_i = R_i − 1/(K−1) Σ_{j≠i} R_j.
Advantages are per sequence: every token of y_i gets A_i, as in RLOO and GRPO. Per-token
advantages (TRL's PPO) need a learned value V(x, y_<t), a second network with its own
loss and its own errors; with the leave-one-out baseline there is none to fit. The KL
penalty still enters per token, through R, and is not differentiated through directly.

"reinforce": one gradient step per batch of samples on
    L = −1/N Σ_i A_i · log π_φ(y_i|x_i)                          (REINFORCE, Williams 1992)
"ppo": update_epochs passes over minibatches of the same samples with the clipped ratio
ρ_t = π_φ(y_t|·) / π_φold(y_t|·) per token (Schulman et al. 2017, eq. 7),
    L = −mean_t min( ρ_t A, clip(ρ_t, 1 − ε, 1 + ε) A ),
averaged over all response tokens of the minibatch.

The policy runs without dropout and is sampled at the given temperature with top-k off;
its log-probabilities are those of softmax(logits / temperature), the distribution that
was sampled. top_p < 1 samples from a truncated distribution, which the ratio ignores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.ml.lm.lm import (
    PromptResponseBatch,
    autocast_to,
    collate_prompt_response,
    decode_responses,
    encode_prompts,
    forward_dtype,
    generate_response_ids,
    max_positions,
    token_logprobs,
    tokenize_prompt_response,
)

# reward_fn(prompts, responses) → r(x_i, y_i), (N,): a learned LMRewardModel.score, or a
# synthetic teacher's score.
RewardFn = Callable[[Sequence[str], Sequence[str]], Tensor]
Algorithm = Literal["reinforce", "ppo"]


@dataclass(frozen=True)
class LMPolicyGradientConfig:
    """Defaults sized for the demo LM (training/ml/demo_lm.py)."""

    k: int = 4  # samples per prompt, for the leave-one-out baseline (K >= 2)
    beta: float = 0.05  # β of the KL penalty
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    iterations: int = 20
    prompts_per_iteration: int = 8  # the batch is prompts_per_iteration · k samples
    lr: float = 5e-5
    max_grad_norm: float = 1.0
    normalize_advantages: bool = False  # whiten A over the batch (after the baseline)
    clip_coef: float = 0.2  # ε of PPO's clip
    update_epochs: int = 4  # PPO passes over each batch of samples
    num_minibatches: int = 2  # PPO minibatches per pass
    dtype: str = "auto"  # of the forward passes: "auto", "float32" or "bfloat16" (lm.forward_dtype)


def per_token_kl(*, policy_logps: Tensor, reference_logps: Tensor, mask: Tensor) -> Tensor:
    """log π(y_t|·) − log π_ref(y_t|·) on response tokens, 0 elsewhere: (N, T)."""
    return (policy_logps - reference_logps) * mask


@torch.no_grad()
def kl_to_reference(
    *,
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Σ_t [log π(y_t|x, y_<t) − log π_ref(y_t|x, y_<t)] over each response's tokens
    (eos included): (N,). For y ~ π its mean estimates KL(π(·|x) ‖ π_ref(·|x)); it is
    exactly 0 when the policy is the reference."""
    batch = tokenize_prompt_response(
        tokenizer=tokenizer,
        prompts=prompts,
        responses=responses,
        max_length=max_positions(policy),
        device=device,
    )
    mask = batch.response_mask[:, 1:]
    policy_logps = token_logprobs(model=policy, batch=batch, temperature=temperature)
    reference_logps = token_logprobs(model=reference, batch=batch, temperature=temperature)
    kl = per_token_kl(policy_logps=policy_logps, reference_logps=reference_logps, mask=mask)
    return kl.sum(dim=-1)  # (N,)


def leave_one_out_advantages(returns: Tensor) -> Tensor:
    """A_i = R_i − mean_{j≠i} R_j within each prompt's K samples; returns (P, K) → (P, K)."""
    k = returns.shape[-1]
    if k < 2:
        raise ValueError(f"The leave-one-out baseline needs k >= 2 samples per prompt, got {k}.")
    baseline = (returns.sum(dim=-1, keepdim=True) - returns) / (k - 1)  # (P, K)
    return returns - baseline


def _subset(batch: PromptResponseBatch, idx: Tensor) -> PromptResponseBatch:
    return PromptResponseBatch(
        input_ids=batch.input_ids[idx],
        attention_mask=batch.attention_mask[idx],
        response_mask=batch.response_mask[idx],
    )


def train_lm_policy_gradient(
    *,
    algorithm: Algorithm,
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_fn: RewardFn,
    prompts: Sequence[str],
    k: int = LMPolicyGradientConfig.k,
    beta: float = LMPolicyGradientConfig.beta,
    temperature: float = LMPolicyGradientConfig.temperature,
    top_p: float = LMPolicyGradientConfig.top_p,
    max_new_tokens: int = LMPolicyGradientConfig.max_new_tokens,
    iterations: int = LMPolicyGradientConfig.iterations,
    prompts_per_iteration: int = LMPolicyGradientConfig.prompts_per_iteration,
    lr: float = LMPolicyGradientConfig.lr,
    max_grad_norm: float = LMPolicyGradientConfig.max_grad_norm,
    normalize_advantages: bool = LMPolicyGradientConfig.normalize_advantages,
    clip_coef: float = LMPolicyGradientConfig.clip_coef,
    update_epochs: int = LMPolicyGradientConfig.update_epochs,
    num_minibatches: int = LMPolicyGradientConfig.num_minibatches,
    dtype: str = LMPolicyGradientConfig.dtype,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """Train ``policy`` in place by REINFORCE-LOO or PPO against reward_fn − β·KL to
    ``reference``; progress(fraction) after each iteration. dtype: what the forward
    passes, sampling included, compute in (lm.forward_dtype; bf16 under autocast, the
    log-softmax, weights and optimizer state in fp32).

    Returns the last iteration's metrics, measured on its samples before its update:
    reward/mean (mean reward_fn score), kl (mean Σ_t KL_t per sequence), objective/scores,
    objective/kl, objective/rlhf_reward (mean R = score − β·KL), objective/entropy (mean
    −log π(y|x)), val/response_length, loss/policy; policy/approxkl and policy/clipfrac
    for PPO; and reward/initial_mean, the mean score of the first iteration's samples
    (the starting policy's).
    """
    if algorithm not in ("reinforce", "ppo"):
        raise ValueError(f'algorithm must be "reinforce" or "ppo", got {algorithm!r}.')
    if not prompts:
        raise ValueError("No prompts to sample responses for.")
    if k < 2:
        raise ValueError(f"k must be >= 2: the baseline is the mean of the other samples, got {k}.")
    compute_dtype = forward_dtype(dtype, device)
    reference.to(device).eval().requires_grad_(False)
    policy.to(device).eval()  # eval: no dropout, gradients still flow
    # Only what trains: with a LoRA adapter (training/ml/lm/lora.py), the adapter's weights.
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(seed)
    prompt_order: list[int] = []
    initial_reward = float("nan")
    metrics: dict[str, float] = {}

    for iteration in range(iterations):
        # 1. Sample K responses to each of this iteration's prompts.
        while len(prompt_order) < prompts_per_iteration:
            prompt_order += rng.permutation(len(prompts)).tolist()
        chosen = [prompts[i] for i in prompt_order[:prompts_per_iteration]]
        prompt_order = prompt_order[prompts_per_iteration:]
        with autocast_to(compute_dtype, device):
            response_ids = generate_response_ids(
                model=policy,
                tokenizer=tokenizer,
                prompts=chosen,
                k=k,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                seed=int(rng.integers(2**31)),
                device=device,
            )  # (P, K, ·)
        flat_prompts = [prompt for prompt in chosen for _ in range(k)]  # N = P · K
        flat_responses = [ids for per_prompt in response_ids for ids in per_prompt]
        prompt_ids = encode_prompts(tokenizer, chosen)
        batch = collate_prompt_response(
            prompt_ids=[ids for ids in prompt_ids for _ in range(k)],
            response_ids=flat_responses,
            pad_token_id=tokenizer.pad_token_id,
            max_length=max_positions(policy),
            device=device,
        )
        mask = batch.response_mask[:, 1:].float()  # (N, T−1) the response tokens
        scores = torch.as_tensor(
            reward_fn(flat_prompts, decode_responses(tokenizer, flat_responses)),
            dtype=torch.float32,
        ).to(device)  # (N,)

        # 2. Per-token rewards: −β·KL on every response token, r_θ(x, y) on the last.
        with torch.no_grad():
            old_logps = token_logprobs(
                model=policy, batch=batch, temperature=temperature, dtype=compute_dtype
            )
            reference_logps = token_logprobs(
                model=reference, batch=batch, temperature=temperature, dtype=compute_dtype
            )
        kl = per_token_kl(policy_logps=old_logps, reference_logps=reference_logps, mask=mask)
        rewards = -beta * kl  # (N, T−1)
        last = (mask * torch.arange(mask.shape[1], device=device)).argmax(dim=-1)  # (N,)
        rewards[torch.arange(len(last), device=device), last] += scores
        returns = rewards.sum(dim=-1)  # (N,) R = r_θ − β Σ_t KL_t

        # 3. Leave-one-out baseline over each prompt's K samples (RLOO).
        advantages = leave_one_out_advantages(returns.view(-1, k)).flatten()  # (N,)
        if normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        # 4. The update.
        if algorithm == "reinforce":
            logps = token_logprobs(
                model=policy, batch=batch, temperature=temperature, dtype=compute_dtype
            )  # (N, T−1)
            # REINFORCE with the RLOO baseline, Ahmadian et al. 2024, eq. 5
            loss = -(advantages * logps.sum(dim=-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            update_metrics = {"loss/policy": loss.item()}
        else:
            update_metrics = _ppo_update(
                policy=policy,
                optimizer=optimizer,
                batch=batch,
                old_logps=old_logps,
                advantages=advantages,
                temperature=temperature,
                clip_coef=clip_coef,
                update_epochs=update_epochs,
                num_minibatches=num_minibatches,
                max_grad_norm=max_grad_norm,
                rng=rng,
                dtype=compute_dtype,
            )

        sequence_kl = kl.sum(dim=-1)  # (N,)
        if iteration == 0:
            initial_reward = scores.mean().item()
        metrics = {
            "reward/mean": scores.mean().item(),
            "reward/initial_mean": initial_reward,
            "kl": sequence_kl.mean().item(),
            "objective/scores": scores.mean().item(),
            "objective/kl": sequence_kl.mean().item(),
            "objective/rlhf_reward": returns.mean().item(),
            "objective/entropy": -old_logps.sum(dim=-1).mean().item(),
            "val/response_length": mask.sum(dim=-1).mean().item(),
            **update_metrics,
        }
        if progress is not None:
            progress((iteration + 1) / iterations)
    return metrics


def _ppo_update(
    *,
    policy: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    batch: PromptResponseBatch,
    old_logps: Tensor,
    advantages: Tensor,
    temperature: float,
    clip_coef: float,
    update_epochs: int,
    num_minibatches: int,
    max_grad_norm: float,
    rng: np.random.Generator,
    dtype: torch.dtype,
) -> dict[str, float]:
    """update_epochs passes of clipped-ratio steps over minibatches of one batch of samples."""
    n = len(advantages)
    minibatch_size = max(1, n // num_minibatches)
    losses, approx_kls, clipfracs = [], [], []
    for _ in range(update_epochs):
        order = torch.as_tensor(rng.permutation(n), device=advantages.device)
        for start in range(0, n, minibatch_size):
            idx = order[start : start + minibatch_size]
            minibatch = _subset(batch, idx)
            mask = minibatch.response_mask[:, 1:].float()  # (B, T−1)
            logps = token_logprobs(
                model=policy, batch=minibatch, temperature=temperature, dtype=dtype
            )
            log_ratio = (logps - old_logps[idx]) * mask  # (B, T−1)
            ratio = log_ratio.exp()  # ρ_t
            advantage = advantages[idx].unsqueeze(-1)  # (B, 1): the sequence's A on each token
            # PPO's clipped surrogate, Schulman et al. 2017, eq. 7, per token
            unclipped = -advantage * ratio
            clipped = -advantage * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
            loss = (torch.maximum(unclipped, clipped) * mask).sum() / mask.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                losses.append(loss.item())
                # k3 estimator of KL(π_old ‖ π), as CleanRL logs approx_kl
                approx_kls.append(
                    (((ratio - 1) - log_ratio) * mask).sum().item() / mask.sum().item()
                )
                clipped_tokens = ((ratio - 1.0).abs() > clip_coef).float() * mask
                clipfracs.append(clipped_tokens.sum().item() / mask.sum().item())
    return {
        "loss/policy": float(np.mean(losses)),
        "policy/approxkl": float(np.mean(approx_kls)),
        "policy/clipfrac": float(np.mean(clipfracs)),
    }
