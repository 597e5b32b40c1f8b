"""Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization:
Your Language Model is Secretly a Reward Model"): fit the policy to preference pairs
directly, with no reward model and no sampling.

For a prompt x with a chosen response y_w and a rejected one y_l,
    L_DPO(π_θ; π_ref) = −E[ log σ( β log π_θ(y_w|x)/π_ref(y_w|x)
                                  − β log π_θ(y_l|x)/π_ref(y_l|x) ) ]            (eq. 7)
The policy's implicit reward is r̂(x, y) = β log π_θ(y|x)/π_ref(y|x) (eq. 5, without the
β log Z(x) that cancels in the difference). With label smoothing ε > 0 the labels are
taken as flipped with probability ε, "conservative DPO" (Mitchell 2023, "A note on DPO
with noisy preferences"):
    L_cDPO = −(1 − ε) log σ(β h) − ε log σ(−β h),   h = the difference of log-ratios above.
With per-pair weights w_k, the posterior that pair k's label is right given its
annotator's estimated flip rate (training/ml/reliability.py, eq. 4), each pair is fitted
to its own soft label, cDPO with ε_k = 1 − w_k:
    L_k = −w_k log σ(β h_k) − (1 − w_k) log σ(−β h_k)

π_ref is frozen, so its log-probabilities are computed once before training, without
gradient, each distinct (prompt, response) once, shortest first. Each step scores the
chosen and the rejected responses of a batch in one forward pass, each distinct row once:
2B rows for B pairs, fewer where pairs share a response. A ranking's pairs (neighbours
with one prompt) stay together when the pairs are shuffled, so a K-ranking's C(K, 2)
pairs meet in a batch and cost K rows, not K(K − 1). Forward passes may run under bf16
autocast (dtype). The policy runs without dropout (TRL's disable_dropout), so that
π_θ = π_ref exactly at the start.
Metrics are named as TRL's DPOTrainer names them; without the closing pass they are, as
TRL logs them, the training batches' (benchmarks/dpo_throughput.py measures all of this
beside TRL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.ml.lm import distributed
from training.ml.lm.lm import (
    encode_prompts,
    encode_responses,
    forward_dtype,
)
from training.ml.lm.row_logps import all_row_logps, row_logps

# (prompt x, chosen response y_w, rejected response y_l)
PreferencePair = tuple[str, str, str]


@dataclass(frozen=True)
class DPOConfig:
    """Defaults sized for the demo LM (training/ml/demo_lm.py); a pretrained LM of 10⁸+
    parameters wants lr ≈ 5e-7 to 1e-6 (the paper's 1e-6)."""

    beta: float = 0.1  # β, the strength of the implicit KL constraint (paper: 0.1 to 0.5)
    label_smoothing: float = 0.0  # ε of conservative DPO; 0 is plain DPO
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8  # pairs per step; the forward pass sees 2 · batch_size rows
    max_grad_norm: float = 10.0  # the reference implementation's clip
    dtype: str = "auto"  # of the forward passes: "auto", "float32" or "bfloat16" (lm.forward_dtype)
    closing_pass: bool = True  # metrics from one more pass over all pairs, not the batches


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The DPO loss of each pair, Rafailov et al. 2023, eq. 7 (conservative DPO when
    label_smoothing > 0, or per pair with weights).

    Args:
        policy_chosen_logps: log π_θ(y_w|x), summed over response tokens. Shape (B,).
        policy_rejected_logps: log π_θ(y_l|x). Shape (B,).
        reference_chosen_logps: log π_ref(y_w|x). Shape (B,).
        reference_rejected_logps: log π_ref(y_l|x). Shape (B,).
        beta: β, the temperature of the implicit reward; larger stays nearer π_ref.
        label_smoothing: ε in [0, 0.5), the assumed probability that a label is flipped.
        weights: w_k in [0, 1], the probability that each pair's label is right. Shape (B,).
            None: 1 − label_smoothing for every pair; with weights, label_smoothing is 0.

    Returns:
        (losses, chosen_rewards, rejected_rewards), each of shape (B,). The rewards are
        the implicit β log π_θ(y|x)/π_ref(y|x), detached.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}.")
    if weights is not None and label_smoothing:
        raise ValueError("Give label_smoothing or per-pair weights, not both.")
    policy_logratios = policy_chosen_logps - policy_rejected_logps  # (B,)
    reference_logratios = reference_chosen_logps - reference_rejected_logps  # (B,)
    h = policy_logratios - reference_logratios  # (B,)
    w = 1.0 - label_smoothing if weights is None else weights.to(h.dtype)  # (B,) or scalar
    # DPO loss, Rafailov et al. 2023, eq. 7; cDPO (Mitchell 2023) mixes in the flipped label
    losses = -w * F.logsigmoid(beta * h) - (1.0 - w) * F.logsigmoid(-beta * h)  # (B,)
    # implicit reward r̂(x, y) = β log π_θ(y|x)/π_ref(y|x), Rafailov et al. 2023, eq. 5
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps).detach()  # (B,)
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


def prompt_grouped_order(prompts: Sequence[str], *, generator: torch.Generator) -> list[int]:
    """A random order of the pairs in which each run of consecutive pairs with the same
    prompt (a ranking's C(K, 2) pairs, as training/kinds/text.py gives them) stays together,
    in the order given: the runs are shuffled, not the pairs. So a K-ranking's pairs meet
    in a batch and share their K forward rows (InstructGPT §3.5 trains a ranking's pairs as
    one batch element for the same reason). With no two neighbours sharing a prompt this is
    torch.randperm(len(prompts)), the plain shuffle."""
    runs: list[list[int]] = []
    for i, prompt in enumerate(prompts):
        if runs and prompts[runs[-1][0]] == prompt:
            runs[-1].append(i)
        else:
            runs.append([i])
    shuffled = torch.randperm(len(runs), generator=generator).tolist()
    return [i for run in shuffled for i in runs[run]]


def _pair_logps(
    *,
    model: PreTrainedModel,
    prompt_ids: Sequence[list[int]],
    chosen_ids: Sequence[list[int]],
    rejected_ids: Sequence[list[int]],
    pad_token_id: int,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """log π(y_w|x), log π(y_l|x) for a batch of B pairs: (B,), (B,). The batch's distinct
    (prompt, response) rows go through the model in one forward pass: 2B rows, fewer where
    pairs share a response (the 6 pairs of a 4-ranking have 4)."""
    logps = row_logps(
        model=model,
        prompt_ids=[*prompt_ids, *prompt_ids],
        response_ids=[*chosen_ids, *rejected_ids],
        pad_token_id=pad_token_id,
        device=device,
        dtype=dtype,
    )  # (2B,)
    return logps[: len(prompt_ids)], logps[len(prompt_ids) :]


def _all_pair_logps(
    *,
    model: PreTrainedModel,
    prompt_ids: Sequence[list[int]],
    chosen_ids: Sequence[list[int]],
    rejected_ids: Sequence[list[int]],
    rows: int,
    pad_token_id: int,
    device: torch.device | str,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """log π(y_w|x), log π(y_l|x) of all N pairs without gradient: (N,), (N,). Each distinct
    (prompt, response) is scored once, shortest first (the least padding), ``rows`` a pass."""
    logps = all_row_logps(
        model=model,
        prompt_ids=[*prompt_ids, *prompt_ids],
        response_ids=[*chosen_ids, *rejected_ids],
        rows=rows,
        pad_token_id=pad_token_id,
        device=device,
        dtype=dtype,
    )  # (2N,)
    return logps[: len(prompt_ids)], logps[len(prompt_ids) :]


def _pair_metrics(
    *,
    losses: Tensor,
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    policy_chosen: Tensor,
    policy_rejected: Tensor,
) -> Tensor:
    """Per-pair sums of what train_dpo reports, in METRIC_NAMES' order: (7,)."""
    return torch.stack(
        [
            chosen_rewards.sum(),
            rejected_rewards.sum(),
            (chosen_rewards - rejected_rewards).sum(),
            (chosen_rewards > rejected_rewards).float().sum(),
            policy_chosen.detach().sum(),
            policy_rejected.detach().sum(),
            losses.detach().sum(),
        ]
    ).float()


METRIC_NAMES = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "loss",
)


def train_dpo(
    *,
    policy: PreTrainedModel,
    reference: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    beta: float = DPOConfig.beta,
    label_smoothing: float = DPOConfig.label_smoothing,
    weights: Sequence[float] | None = None,
    epochs: int = DPOConfig.epochs,
    lr: float = DPOConfig.lr,
    batch_size: int = DPOConfig.batch_size,
    max_grad_norm: float = DPOConfig.max_grad_norm,
    dtype: str = DPOConfig.dtype,
    closing_pass: bool = DPOConfig.closing_pass,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Train ``policy`` in place with DPO on (prompt, chosen, rejected) pairs.

    reference: π_ref; None takes the policy as it is before training (the usual choice, and
    no copy is needed: π_ref's log-probabilities are all computed before the first step);
    for a LoRA policy, lora.reference_of(policy), its base with the adapters switched off.
    weights: per pair, the probability that its label is right (dpo_loss); None: all
    labels taken as given (or smoothed by label_smoothing).
    dtype: what the forward passes compute in (lm.forward_dtype): "float32", "bfloat16"
    (autocast; weights and optimizer state stay fp32), or "auto".
    closing_pass: score every pair once more with the trained policy for the metrics;
    False takes them from the last epoch's training batches, as TRL's DPOTrainer logs them
    (each pair as the policy scored it in its step, before that step's update).
    progress(fraction) after each step; on_step(step, loss) too, with the step's number
    (from 1) and its batch's mean loss.

    Inside a process group (torchrun, training/ml/lm/distributed.py) each process takes its
    share of every batch, in the order the seed gives them all, and the processes sum their
    gradients: each step, the loss and the metrics are those of one process on the whole
    batch (to rounding). Every process trains its own copy to the same weights.

    Returns TRL-named metrics, means over pairs: rewards/chosen, rewards/rejected (implicit
    rewards), rewards/margins (their difference), rewards/accuracies (the fraction with
    chosen reward > rejected), logps/chosen, logps/rejected (log π_θ), loss (DPO loss);
    and train/loss, the mean loss over the last epoch's steps.
    """
    if not pairs:
        raise ValueError("No preference pairs to train on: collect some judgements first.")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}.")
    compute_dtype = forward_dtype(dtype, device)
    _, world = distributed.rank_and_world()
    prompts = [prompt for prompt, _, _ in pairs]
    prompt_ids = encode_prompts(tokenizer, prompts)
    chosen_ids = encode_responses(tokenizer, [chosen for _, chosen, _ in pairs])
    rejected_ids = encode_responses(tokenizer, [rejected for _, _, rejected in pairs])
    pad = tokenizer.pad_token_id
    n = len(pairs)
    if weights is not None and len(weights) != n:
        raise ValueError(f"{len(weights)} weights for {n} pairs.")
    pair_weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)

    def all_logps(model: PreTrainedModel) -> tuple[Tensor, Tensor]:
        mine = distributed.share(range(n))  # all of them in one process
        chosen, rejected = _all_pair_logps(
            model=model,
            prompt_ids=[prompt_ids[i] for i in mine],
            chosen_ids=[chosen_ids[i] for i in mine],
            rejected_ids=[rejected_ids[i] for i in mine],
            rows=2 * batch_size,
            pad_token_id=pad,
            device=device,
            dtype=compute_dtype,
        )
        return distributed.gathered(mine, chosen, n), distributed.gathered(mine, rejected, n)

    policy.to(device).eval()  # eval: no dropout, gradients still flow
    reference = policy if reference is None else reference.to(device).eval()
    # π_ref is frozen: its log-probabilities are computed once, here.
    reference_chosen, reference_rejected = all_logps(reference)

    # Only what trains: with a LoRA adapter (training/ml/lm/lora.py), the adapter's weights.
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)  # the order of the pairs
    steps_per_epoch = (n + batch_size - 1) // batch_size
    epoch_losses: list[Tensor] = []
    epoch_sums = torch.zeros(len(METRIC_NAMES))
    for epoch in range(epochs):
        epoch_losses, epoch_sums = [], torch.zeros(len(METRIC_NAMES), device=device)
        order = prompt_grouped_order(prompts, generator=generator)
        for step, start in enumerate(range(0, n, batch_size)):
            batch = order[start : start + batch_size]
            idx = distributed.share(batch)  # this process's pairs of the batch: all, alone
            policy_chosen, policy_rejected = _pair_logps(
                model=policy,
                prompt_ids=[prompt_ids[i] for i in idx],
                chosen_ids=[chosen_ids[i] for i in idx],
                rejected_ids=[rejected_ids[i] for i in idx],
                pad_token_id=pad,
                device=device,
                dtype=compute_dtype,
            )  # (B,), (B,)
            losses, chosen_rewards, rejected_rewards = dpo_loss(
                policy_chosen,
                policy_rejected,
                reference_chosen[idx],
                reference_rejected[idx],
                beta=beta,
                label_smoothing=label_smoothing,
                weights=None if pair_weights is None else pair_weights[idx].to(device),
            )
            # The batch's mean loss; a process of several takes its share's sum over the
            # batch's size, and the sum of their gradients is the whole batch's gradient.
            loss = losses.mean() if world == 1 else losses.sum() / len(batch)
            optimizer.zero_grad(set_to_none=True)
            if idx:
                loss.backward()
            distributed.sum_gradients(trainable)
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            epoch_losses.append(distributed.summed(loss.detach()))
            epoch_sums += _pair_metrics(
                losses=losses,
                chosen_rewards=chosen_rewards,
                rejected_rewards=rejected_rewards,
                policy_chosen=policy_chosen,
                policy_rejected=policy_rejected,
            )
            if progress is not None:
                progress((epoch * steps_per_epoch + step + 1) / (epochs * steps_per_epoch))
            if on_step is not None:
                on_step(epoch * steps_per_epoch + step + 1, epoch_losses[-1].item())
    train_loss = torch.stack(epoch_losses).mean().item()

    if not closing_pass:
        means = (distributed.summed(epoch_sums) / n).tolist()
        return {**dict(zip(METRIC_NAMES, means, strict=True)), "train/loss": train_loss}
    policy_chosen, policy_rejected = all_logps(policy)
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        policy_chosen,
        policy_rejected,
        reference_chosen,
        reference_rejected,
        beta=beta,
        label_smoothing=label_smoothing,
        weights=None if pair_weights is None else pair_weights.to(device),
    )
    sums = _pair_metrics(
        losses=losses,
        chosen_rewards=chosen_rewards,
        rejected_rewards=rejected_rewards,
        policy_chosen=policy_chosen,
        policy_rejected=policy_rejected,
    )
    return {**dict(zip(METRIC_NAMES, (sums / n).tolist(), strict=True)), "train/loss": train_loss}
