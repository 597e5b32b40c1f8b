"""Kahneman–Tversky Optimization (Ethayarajh et al. 2024, "KTO: Model Alignment as
Prospect Theoretic Optimization"): fit the policy to completions judged desirable or
undesirable on their own (a thumbs up or down, a rating), with no pairs and no reward model.

For a prompt x and a completion y,
    r_θ(x, y) = log π_θ(y|x) − log π_ref(y|x)                 (the implied reward)
    z_0      = KL(π_θ(y'|x) ‖ π_ref(y'|x))                      (the reference point)
    v(x, y)  = λ_D σ(β (r_θ(x, y) − z_0))   if y is desirable
               λ_U σ(β (z_0 − r_θ(x, y)))   if y is undesirable
    L_KTO(π_θ, π_ref) = E_{x,y}[ λ_y − v(x, y) ]                (§4)
As the paper does, z_0 is estimated per batch from mismatched pairs, here each prompt
with the completion of its neighbour in the batch (x_i, y_{i−1}), as TRL's KTOTrainer
pairs them:
    ẑ_0 = max(0, mean_i [log π_θ(y_{i−1}|x_i) − log π_ref(y_{i−1}|x_i)]),
and no gradient flows through it (as in the paper: z_0 only sets where the loss
saturates). λ_D and λ_U weigh the two kinds of completion; the paper recommends
λ_D n_D / λ_U n_U in [1, 4/3] for n_D desirable and n_U undesirable examples (§4;
λ_D = λ_U = 1 by default, as in TRL).

π_ref is frozen, so all its log-probabilities, of the examples and of every batch's
mismatched pairs (the batches are drawn from the seed before training), are computed once
before the first step, each distinct (prompt, completion) once. With reference None that
is the policy as it starts, and no copy is needed; for a LoRA policy pass
lora.reference_of(policy). Each step scores the batch with gradient and its mismatched
pairs without (TRL computes them under no_grad too). The policy runs without dropout, so
that π_θ = π_ref exactly at the start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.ml.lm.lm import (
    encode_prompts,
    encode_responses,
    forward_dtype,
)
from training.ml.lm.row_logps import all_row_logps, row_logps

# (prompt x, completion y, whether y is desirable)
KTOExample = tuple[str, str, bool]


@dataclass(frozen=True)
class KTOConfig:
    """Defaults sized for the demo LM (training/ml/demo_lm.py), like DPOConfig's; for a
    pretrained LM the paper uses lr ≈ 5e-6, and TRL advises 5e-7 to 5e-6."""

    beta: float = 0.1  # β, the paper's default
    desirable_weight: float = 1.0  # λ_D
    undesirable_weight: float = 1.0  # λ_U; choose λ_D n_D / λ_U n_U in [1, 4/3] (§4)
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8  # examples per step; the KL estimate needs at least 2
    max_grad_norm: float = 10.0
    dtype: str = "auto"  # of the forward passes: "auto", "float32" or "bfloat16" (lm.forward_dtype)
    closing_pass: bool = True  # metrics from one more pass over all examples, not the batches


def kl_estimate(policy_kl_logps: Tensor, reference_kl_logps: Tensor) -> Tensor:
    """The batch's raw estimate of KL(π_θ ‖ π_ref): the mean log-ratio over its mismatched
    pairs (x_i, y_{i−1}); kto_loss detaches it and clamps it at 0. Shapes (M,) → ()."""
    return (policy_kl_logps - reference_kl_logps).mean()


def kto_loss(
    policy_logps: Tensor,
    reference_logps: Tensor,
    desirable: Tensor,
    kl_estimate: Tensor,
    *,
    beta: float,
    desirable_weight: float = KTOConfig.desirable_weight,
    undesirable_weight: float = KTOConfig.undesirable_weight,
) -> tuple[Tensor, Tensor, Tensor]:
    """The KTO loss of each example, Ethayarajh et al. 2024, §4: the batch's loss is
    their mean.

    Args:
        policy_logps: log π_θ(y|x), summed over completion tokens. Shape (B,).
        reference_logps: log π_ref(y|x). Shape (B,).
        desirable: whether each y is desirable. Shape (B,), bool.
        kl_estimate: the batch's mean log π_θ(y'|x)/π_ref(y'|x) over mismatched pairs
            (kl_estimate()). Shape (); detached here and clamped at 0: z_0.
        beta: β, the temperature of the implied reward; larger stays nearer π_ref.
        desirable_weight: λ_D. undesirable_weight: λ_U.

    Returns:
        (losses (B,), rewards (B,), z_0 ()): λ_y − v(x, y), the implied rewards
        β r_θ(x, y) (detached), and the reference point used.
    """
    if desirable_weight <= 0 or undesirable_weight <= 0:
        raise ValueError(
            f"desirable_weight and undesirable_weight must be > 0, got "
            f"{desirable_weight}, {undesirable_weight}."
        )
    z0 = kl_estimate.detach().clamp(min=0)  # z_0 ≥ 0, no gradient through it
    r = policy_logps - reference_logps  # r_θ(x, y), (B,)
    desirable = desirable.to(torch.bool)
    # value v(x, y), Ethayarajh et al. 2024, §4
    v_desirable = desirable_weight * torch.sigmoid(beta * (r - z0))  # (B,)
    v_undesirable = undesirable_weight * torch.sigmoid(beta * (z0 - r))  # (B,)
    v = torch.where(desirable, v_desirable, v_undesirable)
    lam = torch.where(desirable, desirable_weight, undesirable_weight).to(v)  # λ_y
    losses = lam - v  # (B,)
    return losses, beta * r.detach(), z0


def mismatched(batch: Sequence[int]) -> list[int]:
    """For a batch of example indices, the index whose completion each one's prompt is
    paired with to estimate z_0: its predecessor in the batch (the first takes the last),
    TRL's _get_kl_dataset. A batch of one is paired with itself."""
    return [batch[-1], *batch[:-1]]


def _sums(losses: Tensor, rewards: Tensor, logps: Tensor, desirable: Tensor) -> Tensor:
    """Sums over a batch of the loss, the rewards and logps of each kind of example, and
    the two counts (n_D, n_U): (7,)."""
    d, u = desirable, ~desirable
    return torch.stack(
        [
            losses.detach().sum(),
            rewards[d].sum(),
            rewards[u].sum(),
            logps.detach()[d].sum(),
            logps.detach()[u].sum(),
            d.sum().float(),
            u.sum().float(),
        ]
    )


def _means(sums: Tensor, kl: float) -> dict[str, float]:
    """The metrics from _sums' totals; a kind of example that is absent is left out."""
    loss, r_d, r_u, lp_d, lp_u, n_d, n_u = sums.tolist()
    metrics = {"kto/loss": loss / (n_d + n_u), "kto/kl": kl}
    if n_d:
        metrics |= {"rewards/desirable": r_d / n_d, "logps/desirable": lp_d / n_d}
    if n_u:
        metrics |= {"rewards/undesirable": r_u / n_u, "logps/undesirable": lp_u / n_u}
    return metrics


def train_kto(
    *,
    policy: PreTrainedModel,
    reference: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[KTOExample],
    beta: float = KTOConfig.beta,
    desirable_weight: float = KTOConfig.desirable_weight,
    undesirable_weight: float = KTOConfig.undesirable_weight,
    epochs: int = KTOConfig.epochs,
    lr: float = KTOConfig.lr,
    batch_size: int = KTOConfig.batch_size,
    max_grad_norm: float = KTOConfig.max_grad_norm,
    dtype: str = KTOConfig.dtype,
    closing_pass: bool = KTOConfig.closing_pass,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> dict[str, float]:
    """Train ``policy`` in place with KTO on (prompt, completion, desirable) examples.

    reference: π_ref; None takes the policy as it is before training (no copy is needed:
    π_ref's log-probabilities are all computed before the first step); for a LoRA policy,
    lora.reference_of(policy), its base with the adapters switched off.
    dtype: what the forward passes compute in (lm.forward_dtype).
    closing_pass: score every example once more with the trained policy for the metrics,
    z_0 then estimated over the last epoch's mismatched pairs; False takes them from the
    last epoch's training batches, as TRL logs them.
    progress(fraction) after each step.

    Returns, means over examples: kto/loss (the KTO loss), kto/kl (z_0; with the closing
    pass over all the last epoch's mismatched pairs, else the mean of the batches'),
    rewards/desirable and rewards/undesirable (the implied reward β r_θ over each kind),
    logps/desirable and logps/undesirable (log π_θ),
    count/desirable and count/undesirable (n_D, n_U), kto/weight_ratio
    (λ_D n_D / λ_U n_U, which the paper advises to keep in [1, 4/3]); and train/loss, the
    mean loss over the last epoch's steps.
    """
    if not examples:
        raise ValueError("No desirable or undesirable completions to train on: rate some first.")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}.")
    compute_dtype = forward_dtype(dtype, device)
    n = len(examples)
    prompt_ids = encode_prompts(tokenizer, [x for x, _, _ in examples])
    completion_ids = encode_responses(tokenizer, [y for _, y, _ in examples])
    desirable = torch.tensor([bool(d) for _, _, d in examples], device=device)  # (N,)
    pad = tokenizer.pad_token_id
    loss_of = dict(
        beta=beta, desirable_weight=desirable_weight, undesirable_weight=undesirable_weight
    )

    # Every epoch's batches, drawn now so π_ref can score their mismatched pairs up front.
    generator = torch.Generator().manual_seed(seed)
    batches = []  # per epoch, the batches (lists of example indices)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).tolist()
        batches.append([order[s : s + batch_size] for s in range(0, n, batch_size)])
    # row k of the KL pairs: (x of kl_prompt[k], y of kl_completion[k]), per epoch and batch
    kl_prompt = [i for epoch in batches for batch in epoch for i in batch]
    kl_completion = [j for epoch in batches for batch in epoch for j in mismatched(batch)]

    def all_logps(model, prompts: list[int], completions: list[int]) -> Tensor:
        return all_row_logps(
            model=model,
            prompt_ids=[prompt_ids[i] for i in prompts],
            response_ids=[completion_ids[j] for j in completions],
            rows=2 * batch_size,
            pad_token_id=pad,
            device=device,
            dtype=compute_dtype,
        )

    policy.to(device).eval()  # eval: no dropout, gradients still flow
    reference = policy if reference is None else reference.to(device).eval()
    # π_ref is frozen: its log-probabilities are computed once, here.
    reference_logps = all_logps(reference, list(range(n)), list(range(n)))  # (N,)
    reference_kl = all_logps(reference, kl_prompt, kl_completion)  # (epochs · N,)

    # Only what trains: with a LoRA adapter (training/ml/lm/lora.py), the adapter's weights.
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    steps = sum(len(epoch) for epoch in batches)
    done, kl_row = 0, 0
    epoch_losses: list[Tensor] = []
    epoch_sums, epoch_kl = torch.zeros(7), []  # of the last epoch
    for epoch in batches:
        epoch_losses, epoch_sums, epoch_kl = [], torch.zeros(7, device=device), []
        for batch in epoch:
            kl_rows = slice(kl_row, kl_row + len(batch))
            kl_row += len(batch)
            policy_kl = all_logps(policy, batch, mismatched(batch))  # (B,), no gradient
            z = kl_estimate(policy_kl, reference_kl[kl_rows])
            policy_logps = row_logps(
                model=policy,
                prompt_ids=[prompt_ids[i] for i in batch],
                response_ids=[completion_ids[i] for i in batch],
                pad_token_id=pad,
                device=device,
                dtype=compute_dtype,
            )  # (B,)
            idx = torch.tensor(batch, device=device)
            losses, rewards, z0 = kto_loss(
                policy_logps, reference_logps[idx], desirable[idx], z, **loss_of
            )
            loss = losses.mean()  # L_KTO = E[λ_y − v(x, y)]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            epoch_losses.append(loss.detach())
            epoch_sums += _sums(losses, rewards, policy_logps, desirable[idx])
            epoch_kl.append(z0.item())
            done += 1
            if progress is not None:
                progress(done / steps)
    train_loss = torch.stack(epoch_losses).mean().item()

    if closing_pass:
        last = slice(len(kl_prompt) - n, len(kl_prompt))  # the last epoch's mismatched pairs
        policy_kl = all_logps(policy, kl_prompt[last], kl_completion[last])
        policy_logps = all_logps(policy, list(range(n)), list(range(n)))
        losses, rewards, z0 = kto_loss(
            policy_logps,
            reference_logps,
            desirable,
            kl_estimate(policy_kl, reference_kl[last]),
            **loss_of,
        )
        sums, kl = _sums(losses, rewards, policy_logps, desirable), z0.item()
    else:
        sums, kl = epoch_sums, sum(epoch_kl) / len(epoch_kl)
    n_d, n_u = int(desirable.sum()), int((~desirable).sum())
    return {
        **_means(sums, kl),
        "count/desirable": n_d,
        "count/undesirable": n_u,
        **(
            {"kto/weight_ratio": desirable_weight * n_d / (undesirable_weight * n_u)} if n_u else {}
        ),
        "train/loss": train_loss,
    }
