"""A reward model r_θ(x, y) for text, with one head per criterion, and its ranking loss
(InstructGPT, Ouyang et al. 2022, §3.5); lm_reward_fit.py fits it.

r_θ is a causal LM's transformer (InstructGPT starts from the SFT model) with its
unembedding replaced by linear heads, each giving one scalar r_c from the final hidden
state of the last real token of [x; y; eos]: one head per rated criterion c of the project,
and the reward the policy is trained on is their weighted sum r = Σ_c w_c r_c (the
project's weights, normalised to sum to 1, so that the reward's scale and the KL
coefficient β mean the same however the weights are written). One criterion is the plain
InstructGPT reward model.

A ranking of K responses gives all C(K,2) (better, worse) pairs, and they stay together as
one batch element, so that each forward pass scores each response once and a prompt with
many pairs does not outweigh the others:
    loss(θ) = −1/C(K,2) · E_{(x, y_w, y_l)} [ log σ( r_θ(x, y_w) − r_θ(x, y_l) − m ) ]   (eq. 1)
with m = m(strength) the margin of Llama 2 (Touvron et al. 2023, eq. 2; 0 for a tie or a
pair without a strength). A single judgement (x, a, b, p) with P[a ≻ b] = p is a group of
one pair; p = 0.5 is a tie, fitted as the cross-entropy −[p log σ(Δ) + (1 − p) log σ(−Δ)]
(bradley_terry.py). A pair may instead train one criterion's head r_c (the pairs the
ratings on c order); a group's loss is the sum, over the heads its pairs train, of the
mean loss of those pairs, so ratings add to the choice's signal and do not dilute it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from training.ml.bradley_terry import bradley_terry_loss, ranking_to_pairs, signed_margins
from training.ml.lm.lm import autocast_to, max_positions, tokenize_prompt_response
from training.ml.seeding import torch_seeded

# (prompt, responses best first), or (prompt, a, b, P[a ≻ b]) with 1, 0 or 0.5 for a tie.
Ranking = tuple[str, Sequence[str]]
WeightedPair = tuple[str, str, str, float]
Criteria = Sequence[tuple[str, float]]  # (name, weight) per head

HEAD_FILE = "reward_head.safetensors"
# {"criteria": [{"name", "weight"}, ...]}, one per row of the head; absent (a checkpoint of
# one head, from before criteria): SINGLE_HEAD
HEADS_FILE = "reward_heads.json"
SINGLE_HEAD = (("overall", 1.0),)


class LMRewardModel(nn.Module):
    """r_θ(x, y) = Σ_c w_c r_c(x, y): a transformer and one linear head per criterion on the
    last real token's hidden state. ``criteria``: (name, weight ≥ 0) per head, weights not
    all 0; ``weights`` holds them normalised to sum to 1."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        criteria: Criteria = SINGLE_HEAD,
    ) -> None:
        super().__init__()
        criteria = tuple((str(name), float(weight)) for name, weight in criteria)
        total = sum(weight for _, weight in criteria)
        if not criteria or total <= 0 or any(w < 0 for _, w in criteria):
            raise ValueError(f"The criteria need weights ≥ 0, not all 0; got {criteria!r}.")
        self.backbone = backbone  # a base model (no LM head): returns last_hidden_state
        self.tokenizer = tokenizer
        self.criteria = criteria
        self.head = nn.Linear(backbone.config.hidden_size, len(criteria))  # row c: r_c
        self.register_buffer(
            "weights", torch.tensor([w / total for _, w in criteria]), persistent=False
        )

    @property
    def criterion_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.criteria)

    @classmethod
    def from_causal_lm(
        cls,
        causal_lm: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        seed: int,
        criteria: Criteria = SINGLE_HEAD,
    ) -> LMRewardModel:
        """A copy of the LM's transformer (its base_model) with new heads; the LM is left
        untouched. The heads start near zero (std 1/√(H+1), as in Stiennon et al.'s code)."""
        backbone = copy.deepcopy(causal_lm.base_model)
        model = cls(backbone, tokenizer, criteria)
        with torch_seeded(seed):
            hidden = backbone.config.hidden_size
            nn.init.normal_(model.head.weight, std=1.0 / math.sqrt(hidden + 1))
            nn.init.zeros_(model.head.bias)
        return model.to(next(backbone.parameters()).device)

    def head_forward(
        self, input_ids: Tensor, attention_mask: Tensor, *, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """input_ids, attention_mask (B, T), right-padded as collate_prompt_response pads
        them → r_c per head (B, n). dtype: the transformer's (autocast_to); heads are fp32."""
        with autocast_to(dtype, input_ids.device):
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False
            ).last_hidden_state  # (B, T, H)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        last = (attention_mask * positions).argmax(dim=-1)  # (B,) the last real token
        final = hidden[torch.arange(len(last), device=hidden.device), last]  # (B, H)
        return self.head(final.float())  # (B, n)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, *, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """r_θ = Σ_c w_c r_c: (B,)."""
        return self.head_forward(input_ids, attention_mask, dtype=dtype) @ self.weights

    def head_rewards(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """r_c(x_i, y_i) per head, differentiable: (N, n)."""
        batch = tokenize_prompt_response(
            tokenizer=self.tokenizer,
            prompts=prompts,
            responses=responses,
            max_length=max_positions(self.backbone),
            device=self.head.weight.device,
        )
        return self.head_forward(batch.input_ids, batch.attention_mask, dtype=dtype)

    def rewards(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """r_θ(x_i, y_i) = Σ_c w_c r_c(x_i, y_i), differentiable: (N,)."""
        return self.head_rewards(prompts, responses, dtype=dtype) @ self.weights

    @torch.no_grad()
    def score(
        self, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int = 32
    ) -> Tensor:
        """r_θ(x_i, y_i), the weighted sum, for N texts: (N,), no gradient, on the model's
        device. Usable as a policy-gradient reward_fn(prompts, responses)."""
        return self.score_heads(prompts, responses, batch_size=batch_size) @ self.weights

    @torch.no_grad()
    def score_heads(
        self, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int = 32
    ) -> Tensor:
        """r_c(x_i, y_i) per head for N texts: (N, n), no gradient."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
        was_training = self.training
        self.eval()
        scores = [
            self.head_rewards(prompts[i : i + batch_size], responses[i : i + batch_size])
            for i in range(0, len(prompts), batch_size)
        ]
        self.train(was_training)
        if not scores:
            return torch.zeros(0, len(self.criteria), device=self.head.weight.device)
        return torch.cat(scores)


def save_lm_reward_model(model: LMRewardModel, path: str | Path) -> Path:
    """The backbone and tokenizer with save_pretrained, the heads as reward_head.safetensors
    and their criteria and weights as reward_heads.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
        path / HEAD_FILE,
    )
    criteria = [{"name": name, "weight": weight} for name, weight in model.criteria]
    (path / HEADS_FILE).write_text(json.dumps({"criteria": criteria}))
    return path


def load_lm_reward_model(path: str | Path, *, device: torch.device | str = "cpu") -> LMRewardModel:
    """A saved reward model; one without reward_heads.json (a single head, saved before
    criteria) loads as the one criterion "overall"."""
    path = Path(path)
    if not (path / HEAD_FILE).is_file():
        raise FileNotFoundError(f"No reward model at {path}: {HEAD_FILE} is missing.")
    criteria = SINGLE_HEAD
    if (path / HEADS_FILE).is_file():
        stored = json.loads((path / HEADS_FILE).read_text())["criteria"]
        criteria = tuple((c["name"], float(c["weight"])) for c in stored)
    backbone = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = LMRewardModel(backbone, tokenizer, criteria)
    model.head.load_state_dict(load_file(path / HEAD_FILE))
    return model.to(device).eval()


@dataclass(frozen=True)
class ComparisonGroup:
    """The responses to one prompt and the pairs judged among them: one batch element.

    annotator: who judged them (for reliability weighting). targets: what the loss fits
    per pair when not p_first itself (reliability.py's soft targets, eq. 4). margins: per
    pair m ≥ 0, the margin the judged winner must clear (None: 0 for every pair). heads:
    per pair the criterion whose head r_c it trains, or None for the weighted sum r_θ
    (None: every pair trains r_θ)."""

    prompt: str
    responses: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]  # (i, j) indices into responses
    p_first: tuple[float, ...]  # P[responses[i] ≻ responses[j]] per pair, as judged
    annotator: Hashable | None = None
    targets: tuple[float, ...] | None = None
    margins: tuple[float, ...] | None = None
    heads: tuple[str | None, ...] | None = None

    def pair_heads(self) -> tuple[str | None, ...]:
        return self.heads if self.heads is not None else (None,) * len(self.pairs)


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


def _reward_columns(model, groups: Sequence[ComparisonGroup], dtype: torch.dtype):
    """Every response of ``groups`` scored once: (ΣK, 1 + n) with column 0 the weighted sum
    r_θ and column 1 + c head c's r_c (only column 0 when no pair trains a head), and the
    column of each head name (None: r_θ)."""
    prompts = [g.prompt for g in groups for _ in g.responses]
    responses = [r for g in groups for r in g.responses]
    if all(head is None for g in groups for head in g.pair_heads()):
        return model.rewards(prompts, responses, dtype=dtype)[:, None], {None: 0}
    per_head = model.head_rewards(prompts, responses, dtype=dtype)  # (ΣK, n)
    total = per_head @ model.weights  # (ΣK,)
    columns = {None: 0, **{name: c + 1 for c, name in enumerate(model.criterion_names)}}
    return torch.cat([total[:, None], per_head], dim=1), columns


def group_losses(
    *,
    model: LMRewardModel,
    groups: Sequence[ComparisonGroup],
    as_judged: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Each group's eq. 1 loss, (G,), and per group (r_i − r_j, P[i ≻ j] as judged) of its
    pairs, each (C,), r being the reward each pair trains (r_θ or its criterion's r_c). The
    loss fits each group's targets where it has them, unless ``as_judged`` (the metrics),
    with each pair's margin. All responses of the batch go through the model in one
    forward pass."""
    rewards, columns = _reward_columns(model, groups, dtype)  # (ΣK, 1 + n)
    losses, differences = [], []
    offset = 0
    for group in groups:
        r = rewards[offset : offset + len(group.responses)]  # (K, 1 + n)
        offset += len(group.responses)
        heads = group.pair_heads()
        if unknown := sorted({h for h in heads if h not in columns}):
            raise ValueError(f"No reward head for criteria {unknown}; the model has {columns}.")
        column = torch.tensor([columns[h] for h in heads], device=r.device)  # (C,)
        first = torch.tensor([i for i, _ in group.pairs], device=r.device)  # (C,)
        second = torch.tensor([j for _, j in group.pairs], device=r.device)  # (C,)
        r_first, r_second = r[first, column], r[second, column]  # (C,) each
        p = torch.tensor(group.p_first, device=r.device)  # (C,)
        fitted = p if as_judged or group.targets is None else torch.tensor(group.targets)
        fitted = fitted.to(r.device)
        margin = signed_margins(
            p, torch.tensor(group.margins or (0.0,) * len(heads), device=r.device)
        )  # (C,) towards the judged winner
        # InstructGPT eq. 1: the pairs of one prompt averaged as one batch element, per head
        loss = r.new_zeros(())
        for head in dict.fromkeys(heads):
            mask = column == columns[head]
            loss = loss + bradley_terry_loss(
                r_first[mask], r_second[mask], fitted[mask], margin[mask]
            )
        losses.append(loss)
        differences.append(((r_first - r_second).detach(), p))
    return torch.stack(losses), differences
