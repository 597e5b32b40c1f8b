"""A text project's policy step with algorithm "kto": KTO (training/ml/lm/kto.py;
Ethayarajh et al. 2024) on completions judged desirable or undesirable on their own, with
no reward model.

The verdicts come from labeling.preferences.verdicts: a rated completion by its weighted
rating over the project's criteria (at or above kto.desirable_at desirable, at or below
kto.undesirable_at undesirable), else thumbs from the choice (the winner desirable, the
last of a ranking undesirable; both_bad makes every candidate undesirable), and an
annotator's edit desirable. A conversation trains on its final assistant turn only
(text_items.item_texts). π_ref is the policy the round starts from, or a LoRA policy's
base with its adapter switched off.
"""

from __future__ import annotations

from collections import Counter

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from labeling.feedback import criteria_of
from labeling.models import Item, Project
from labeling.preferences import DESIRABLE_AT, UNDESIRABLE_AT, verdicts
from training.kinds.config import TextConfig
from training.kinds.text_items import item_texts
from training.ml.lm.kto import KTOConfig, KTOExample, train_kto
from training.steps import StepContext

KTO_EPOCHS = 2  # as text.DPO_EPOCHS: the demo LM's rounds are small


def kto_examples(
    project: Project, config: TextConfig, tokenizer: PreTrainedTokenizerBase
) -> tuple[list[KTOExample], dict[str, int]]:
    """(context, response, desirable) of every verdict, oldest judgement first, and how
    many came from ratings, choices and edits (kto/from_rating, ...)."""
    found = verdicts(
        project,
        criteria=criteria_of(project.config),
        desirable_at=config.kto.get("desirable_at", DESIRABLE_AT),
        undesirable_at=config.kto.get("undesirable_at", UNDESIRABLE_AT),
    )
    items = Item.objects.filter(pk__in={v.item_id for v in found}).only(
        "pk", "prompt", "text", "prompt_messages", "messages"
    )
    texts = {item.pk: item_texts(item, tokenizer) for item in items}
    examples = [(*texts[v.item_id], v.desirable) for v in found]
    sources = Counter(v.source for v in found)
    return examples, {f"kto/from_{s}": sources[s] for s in ("rating", "choice", "edit")}


def train_kto_policy(
    context: StepContext,
    *,
    policy: PreTrainedModel,
    reference: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device | str,
    dtype: str,
) -> dict[str, float] | None:
    """Train ``policy`` in place with KTO on the project's verdicts; its metrics, or None
    when there are none yet (the step then skips). β is config.beta; config.kto overrides
    λ_D, λ_U, the rating thresholds, the epochs and the learning rate."""
    config: TextConfig = context.config
    examples, counts = kto_examples(context.project, config, tokenizer)
    if not examples:
        return None
    overrides = config.kto
    metrics = train_kto(
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        examples=examples,
        beta=config.beta,
        desirable_weight=overrides.get("desirable_weight", KTOConfig.desirable_weight),
        undesirable_weight=overrides.get("undesirable_weight", KTOConfig.undesirable_weight),
        epochs=overrides.get("epochs", KTO_EPOCHS),
        lr=overrides.get("lr", KTOConfig.lr),
        seed=context.seed,
        device=device,
        dtype=dtype,
        progress=lambda f: context.progress(0.8 * f),
    )
    return {**metrics, **counts}
