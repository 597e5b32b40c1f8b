"""A reward model r_θ(x, y) for text, fitted to rankings of K responses (InstructGPT,
Ouyang et al. 2022, §3.5).

r_θ is a causal LM's transformer (InstructGPT starts from the SFT model) with its
unembedding replaced by a linear head giving one scalar from the final hidden state of the
last real token of [x; y; eos]. A ranking of K responses gives all C(K,2) (better, worse)
pairs, and they stay together as one batch element, so that each forward pass scores each
response once and a prompt with many pairs does not outweigh the others:
    loss(θ) = −1/C(K,2) · E_{(x, y_w, y_l)} [ log σ( r_θ(x, y_w) − r_θ(x, y_l) ) ]   (eq. 1)
A single judgement (x, a, b, p) with P[a ≻ b] = p is a group of one pair; p = 0.5 is a
tie, fitted as the cross-entropy −[p log σ(Δ) + (1 − p) log σ(−Δ)] (bradley_terry.py).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from training.ml.bradley_terry import bradley_terry_loss, ranking_to_pairs
from training.ml.lm.lm import autocast_to, forward_dtype, max_positions, tokenize_prompt_response
from training.ml.reliability import (
    Fit,
    FlipRates,
    ReliabilityConfig,
    em_epochs,
    fit_with_reliability,
)
from training.ml.seeding import torch_seeded

# (prompt, responses best first), or (prompt, a, b, P[a ≻ b]) with 1, 0 or 0.5 for a tie.
Ranking = tuple[str, Sequence[str]]
WeightedPair = tuple[str, str, str, float]

HEAD_FILE = "reward_head.safetensors"


@dataclass(frozen=True)
class LMRewardConfig:
    epochs: int = 3
    lr: float = 1e-4  # InstructGPT's 6B RM: 9e-6; the demo LM takes a larger step
    batch_size: int = 8  # comparison groups per step (each of K responses)
    holdout_fraction: float = 0.2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dtype: str = "auto"  # of the forward passes: "auto", "float32" or "bfloat16" (lm.forward_dtype)


class LMRewardModel(nn.Module):
    """r_θ(x, y): a transformer and a scalar head on the last real token's hidden state."""

    def __init__(self, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        self.backbone = backbone  # a base model (no LM head): returns last_hidden_state
        self.tokenizer = tokenizer
        self.head = nn.Linear(backbone.config.hidden_size, 1)

    @classmethod
    def from_causal_lm(
        cls, causal_lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, seed: int
    ) -> LMRewardModel:
        """A copy of the LM's transformer (its base_model) with a new head; the LM is left
        untouched. The head starts near zero (std 1/√(H+1), as in Stiennon et al.'s code)."""
        backbone = copy.deepcopy(causal_lm.base_model)
        model = cls(backbone, tokenizer)
        with torch_seeded(seed):
            hidden = backbone.config.hidden_size
            nn.init.normal_(model.head.weight, std=1.0 / math.sqrt(hidden + 1))
            nn.init.zeros_(model.head.bias)
        return model.to(next(backbone.parameters()).device)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, *, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """input_ids, attention_mask (B, T), right-padded as collate_prompt_response pads
        them → r_θ (B,). dtype: the transformer's (autocast_to); the head is fp32."""
        with autocast_to(dtype, input_ids.device):
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False
            ).last_hidden_state  # (B, T, H)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        last = (attention_mask * positions).argmax(dim=-1)  # (B,) the last real token
        final = hidden[torch.arange(len(last), device=hidden.device), last]  # (B, H)
        return self.head(final.float()).squeeze(-1)  # (B,)

    def rewards(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """r_θ(x_i, y_i), differentiable: (N,)."""
        batch = tokenize_prompt_response(
            tokenizer=self.tokenizer,
            prompts=prompts,
            responses=responses,
            max_length=max_positions(self.backbone),
            device=self.head.weight.device,
        )
        return self(batch.input_ids, batch.attention_mask, dtype=dtype)

    @torch.no_grad()
    def score(
        self, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int = 32
    ) -> Tensor:
        """r_θ(x_i, y_i) for N texts: (N,), no gradient, on the model's device. Usable as a
        policy-gradient reward_fn(prompts, responses)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
        was_training = self.training
        self.eval()
        scores = [
            self.rewards(prompts[i : i + batch_size], responses[i : i + batch_size])
            for i in range(0, len(prompts), batch_size)
        ]
        self.train(was_training)
        return torch.cat(scores) if scores else torch.zeros(0, device=self.head.weight.device)


def save_lm_reward_model(model: LMRewardModel, path: str | Path) -> Path:
    """The backbone and tokenizer with save_pretrained, the head as reward_head.safetensors."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
        path / HEAD_FILE,
    )
    return path


def load_lm_reward_model(path: str | Path, *, device: torch.device | str = "cpu") -> LMRewardModel:
    path = Path(path)
    if not (path / HEAD_FILE).is_file():
        raise FileNotFoundError(f"No reward model at {path}: {HEAD_FILE} is missing.")
    backbone = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = LMRewardModel(backbone, tokenizer)
    model.head.load_state_dict(load_file(path / HEAD_FILE))
    return model.to(device).eval()


@dataclass(frozen=True)
class ComparisonGroup:
    """The responses to one prompt and the pairs judged among them: one batch element.

    annotator: who judged them (for reliability weighting). targets: what the loss fits
    per pair when not p_first itself (reliability.py's soft targets, eq. 4)."""

    prompt: str
    responses: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]  # (i, j) indices into responses
    p_first: tuple[float, ...]  # P[responses[i] ≻ responses[j]] per pair, as judged
    annotator: Hashable | None = None
    targets: tuple[float, ...] | None = None


def comparison_groups(
    rankings: Sequence[Ranking | WeightedPair | ComparisonGroup],
) -> list[ComparisonGroup]:
    """One group per ranking (all C(K,2) pairs, p = 1) or per weighted pair; a
    ComparisonGroup is taken as it is."""
    groups = []
    for item in rankings:
        if isinstance(item, ComparisonGroup):
            groups.append(item)
        elif len(item) == 2:
            prompt, responses = item
            if len(responses) < 2:
                raise ValueError(f"A ranking needs K >= 2 responses, got {len(responses)}.")
            pairs = tuple(ranking_to_pairs(len(responses)))
            groups.append(ComparisonGroup(prompt, tuple(responses), pairs, (1.0,) * len(pairs)))
        elif len(item) == 4:
            prompt, a, b, p_a = item
            if not 0.0 <= p_a <= 1.0:
                raise ValueError(f"P[a ≻ b] must be in [0, 1] (0.5 for a tie), got {p_a!r}.")
            groups.append(ComparisonGroup(prompt, (a, b), ((0, 1),), (float(p_a),)))
        else:
            raise ValueError(
                "Each item must be (prompt, [responses best first]) or (prompt, a, b, p_a); "
                f"got a tuple of {len(item)}."
            )
    return groups


def group_losses(
    *,
    model: LMRewardModel,
    groups: Sequence[ComparisonGroup],
    as_judged: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Each group's eq. 1 loss, (G,), and per group (r_i − r_j, P[i ≻ j] as judged) of its
    pairs, each (C,). The loss fits each group's targets where it has them, unless
    ``as_judged`` (the metrics). All responses of the batch go through the model in one
    forward pass."""
    prompts = [g.prompt for g in groups for _ in g.responses]
    responses = [r for g in groups for r in g.responses]
    rewards = model.rewards(prompts, responses, dtype=dtype)  # (ΣK,) each response once
    losses, differences = [], []
    offset = 0
    for group in groups:
        r = rewards[offset : offset + len(group.responses)]  # (K,)
        offset += len(group.responses)
        first = torch.tensor([i for i, _ in group.pairs], device=r.device)  # (C,)
        second = torch.tensor([j for _, j in group.pairs], device=r.device)  # (C,)
        p = torch.tensor(group.p_first, device=r.device)  # (C,)
        fitted = p if as_judged or group.targets is None else torch.tensor(group.targets)
        # InstructGPT eq. 1: the C(K,2) pairs of one prompt averaged as one batch element
        losses.append(bradley_terry_loss(r[first], r[second], fitted.to(r.device)))
        differences.append(((r[first] - r[second]).detach(), p))
    return torch.stack(losses), differences


@dataclass(frozen=True)
class LMRewardFitMetrics:
    """Losses are eq. 1 averaged over groups; accuracies count the non-tie pairs that r_θ
    orders as judged. None where nothing is held out."""

    train_loss: float
    train_accuracy: float | None
    heldout_loss: float | None
    heldout_accuracy: float | None
    n_train: int  # groups
    n_heldout: int
    n_train_pairs: int
    n_heldout_pairs: int
    reliability: FlipRates | None = field(default=None, compare=False)
    # per group fitted, in the order given: the posterior that each of its pairs' labels is
    # right, judged out of sample (None for a held-out group); with reliability only
    label_weights: list[tuple[float, ...] | None] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, float | int | None]:
        dropped = ("reliability", "label_weights")
        return {k: v for k, v in asdict(self).items() if k not in dropped}

    def as_metrics(self) -> dict[str, float | int | None]:
        return {
            "losses/train_loss": self.train_loss,
            "losses/heldout_loss": self.heldout_loss,
            "charts/train_accuracy": self.train_accuracy,
            "charts/heldout_accuracy": self.heldout_accuracy,
            "charts/n_train": self.n_train,
            "charts/n_heldout": self.n_heldout,
        }


@torch.no_grad()
def _evaluate(
    model: LMRewardModel, groups: Sequence[ComparisonGroup], batch_size: int, dtype: torch.dtype
) -> tuple[float | None, float | None]:
    if not groups:
        return None, None
    losses, right, decided = [], 0, 0
    for start in range(0, len(groups), batch_size):
        batch_losses, differences = group_losses(
            model=model, groups=groups[start : start + batch_size], as_judged=True, dtype=dtype
        )
        losses.append(batch_losses)
        for difference, p in differences:
            mask = p != 0.5
            right += int(((difference > 0) == (p > 0.5))[mask].sum())
            decided += int(mask.sum())
    return torch.cat(losses).mean().item(), (right / decided if decided else None)


def with_targets(groups: Sequence[ComparisonGroup], targets: Tensor) -> list[ComparisonGroup]:
    """The groups, each fitting its share of ``targets`` (ΣC,) in place of its labels."""
    per_group = torch.split(targets, [len(g.pairs) for g in groups])
    return [
        dataclasses.replace(g, targets=tuple(t.tolist()))
        for g, t in zip(groups, per_group, strict=True)
    ]


def _cross_fitted_flip_rates(
    *,
    model: LMRewardModel,
    train: list[ComparisonGroup],
    reliability: ReliabilityConfig,
    schedule: list[int],
    folds: np.ndarray,
    new_optimizer: Callable,
    train_epochs: Callable,
    batch_size: int,
    dtype: torch.dtype,
) -> FlipRates:
    """EM over the training groups' labels (reliability.py), each label judged by a copy of
    r_θ that never saw it: two judges, each fitted on one half of the groups and judging
    the other (cross-fitting; r_θ memorises the labels it is fitted on within a few epochs,
    and would find no flips among them). Held-out groups take no part."""
    labels = [p for g in train for p in g.p_first]
    annotators = [g.annotator for g in train for _ in g.pairs]
    owner = np.repeat(folds, [len(g.pairs) for g in train])  # (ΣC,) the fold of each pair
    judges = [copy.deepcopy(model) for _ in (0, 1)]
    optimizers = [new_optimizer(judge) for judge in judges]

    def fit(targets: Tensor, iteration: int) -> Fit:
        fitted = with_targets(train, targets)
        margins = torch.zeros(len(labels), dtype=torch.float64)
        for fold, (judge, optimizer) in enumerate(zip(judges, optimizers, strict=True)):
            others = [g for g, f in zip(fitted, folds, strict=True) if f != fold]
            train_epochs(judge, optimizer, others, schedule[iteration])
            own = [g for g, f in zip(train, folds, strict=True) if f == fold]
            margins[torch.as_tensor(owner == fold)] = pair_margins(
                judge, own, batch_size=batch_size, dtype=dtype
            ).double()
        return Fit(margins)

    return fit_with_reliability(fit=fit, p_a=labels, annotators=annotators, config=reliability)


@torch.no_grad()
def pair_margins(
    model: LMRewardModel,
    groups: Sequence[ComparisonGroup],
    *,
    batch_size: int,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """r_θ(x, y_i) − r_θ(x, y_j) of every judged pair of ``groups``, in order: (ΣC,)."""
    margins = []
    for start in range(0, len(groups), batch_size):
        _, differences = group_losses(
            model=model, groups=groups[start : start + batch_size], dtype=dtype
        )
        margins += [difference.cpu() for difference, _ in differences]
    return torch.cat(margins) if margins else torch.zeros(0)


def fit_lm_reward_model(
    *,
    model: LMRewardModel,
    rankings: Sequence[Ranking | WeightedPair | ComparisonGroup],
    epochs: int = LMRewardConfig.epochs,
    lr: float = LMRewardConfig.lr,
    batch_size: int = LMRewardConfig.batch_size,
    holdout_fraction: float = LMRewardConfig.holdout_fraction,
    weight_decay: float = LMRewardConfig.weight_decay,
    max_grad_norm: float = LMRewardConfig.max_grad_norm,
    dtype: str = LMRewardConfig.dtype,
    seed: int,
    device: torch.device | str = "cpu",
    reliability: ReliabilityConfig | None = None,
    progress: Callable[[float], None] | None = None,
) -> LMRewardFitMetrics:
    """Fit r_θ in place by InstructGPT's eq. 1 on rankings and weighted pairs.

    holdout_fraction of the groups (chosen with seed; a ranking's pairs stay together) is
    held out for the metrics. The model runs without dropout. progress(fraction) after
    each step. The model is moved to device. dtype: what the forward passes compute in
    (lm.forward_dtype; bf16 under autocast, the head and the loss in fp32).

    With ``reliability``, each group's annotator (ComparisonGroup.annotator) gets a flip
    rate learned by EM (training/ml/reliability.py) on the training groups, with two
    cross-fitted copies of r_θ as the E-step's judges (``_cross_fitted_flip_rates``; about
    doubling the time and holding two more copies of the model); r_θ is then fitted on the
    soft targets of eq. (4). The metrics are measured against the labels as judged."""
    groups = comparison_groups(rankings)
    if not groups:
        raise ValueError("No rankings to fit: collect some judgements first.")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}.")
    if reliability is not None and any(g.annotator is None for g in groups):
        raise ValueError("Reliability weighting needs the annotator of every group.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    n_heldout = min(round(holdout_fraction * len(groups)), len(groups) - 1)
    heldout = [groups[i] for i in order[:n_heldout]]
    train = [groups[i] for i in order[n_heldout:]]

    compute_dtype = forward_dtype(dtype, device)
    model.to(device).eval()  # eval: no dropout, gradients still flow
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    total_steps = epochs * steps_per_epoch
    steps_done = 0

    def adamw(net: LMRewardModel) -> torch.optim.Optimizer:
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)

    def train_epochs(net, optimizer, fitted: list[ComparisonGroup], n_epochs: int) -> None:
        nonlocal steps_done
        for _ in range(n_epochs):
            shuffled = [fitted[i] for i in rng.permutation(len(fitted))]
            for start in range(0, len(shuffled), batch_size):
                batch_losses, _ = group_losses(
                    model=net, groups=shuffled[start : start + batch_size], dtype=compute_dtype
                )  # (G,)
                loss = batch_losses.mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
                optimizer.step()
                steps_done += 1
                if progress is not None:
                    progress(min(1.0, steps_done / total_steps))

    found = label_weights = None
    fitted = train
    if reliability is not None:
        total_steps *= 2  # the judges' EM takes about as long as the fit itself
        found = _cross_fitted_flip_rates(
            model=model,
            train=train,
            reliability=reliability,
            schedule=em_epochs(epochs, reliability.em_iterations),
            folds=rng.permutation(len(train)) % 2,
            new_optimizer=adamw,
            train_epochs=train_epochs,
            batch_size=batch_size,
            dtype=compute_dtype,
        )
        fitted = with_targets(train, found.targets)
        label_weights = [None] * len(groups)
        per_group = torch.split(found.weights, [len(g.pairs) for g in train])
        for index, weights in zip(order[n_heldout:], per_group, strict=True):
            label_weights[index] = tuple(weights.tolist())
    train_epochs(model, adamw(model), fitted, epochs)

    train_loss, train_accuracy = _evaluate(model, train, batch_size, compute_dtype)
    heldout_loss, heldout_accuracy = _evaluate(model, heldout, batch_size, compute_dtype)
    return LMRewardFitMetrics(
        train_loss=float(train_loss),
        train_accuracy=train_accuracy,
        heldout_loss=heldout_loss,
        heldout_accuracy=heldout_accuracy,
        n_train=len(train),
        n_heldout=len(heldout),
        n_train_pairs=sum(len(g.pairs) for g in train),
        n_heldout_pairs=sum(len(g.pairs) for g in heldout),
        reliability=found,
        label_weights=label_weights,
    )
