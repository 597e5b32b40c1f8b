"""K responses per prompt from one batched ``generate``, each prompt encoded once.

``generate(num_return_sequences=K)`` repeats every prompt K times before the prefill, so a
prompt's attention is computed K times for one answer. Here the B left-padded prompts are
prefilled once (all but their last token), the KV cache is repeated K times along the
batch (``Cache.batch_repeat_interleave``, the rows in the order ``num_return_sequences``
gives them), and ``generate`` continues from it: it computes only each prompt's last
token, which it needs for the first logits, and the new tokens. The random draws are the
same (B·K, V) ones in the same order, so a seed gives what the repeated prompts give.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from transformers import GenerationConfig, PreTrainedModel


def prompt_positions(attention_mask: Tensor) -> Tensor:
    """The position ids that generate derives for left-padded rows: 0 at each row's first
    real token, 0 on the padding (whose keys the mask hides). (B, W) → (B, W)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _caches(model: PreTrainedModel) -> bool:
    """Whether the model keeps a KV cache that generate can continue from."""
    supports = getattr(model, "_supports_default_dynamic_cache", None)
    return bool(getattr(model.config, "use_cache", True)) and (supports is None or supports())


@torch.no_grad()
def generate_k_per_prompt(
    *,
    model: PreTrainedModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    k: int,
    generation_config: GenerationConfig,
) -> Tensor:
    """K continuations of each of B left-padded prompts, (B·K, W + new): rows b·K .. b·K+K−1
    continue prompt b, as generate(num_return_sequences=K) orders them. input_ids and
    attention_mask are (B, W); generation_config's num_return_sequences is ignored."""
    config = copy.deepcopy(generation_config)
    config.num_return_sequences = 1
    repeated_ids = input_ids.repeat_interleave(k, dim=0)  # (B·K, W)
    repeated_mask = attention_mask.repeat_interleave(k, dim=0)  # (B·K, W)
    if input_ids.shape[1] < 2 or not _caches(model):  # nothing to share before the last token
        return model.generate(
            input_ids=repeated_ids, attention_mask=repeated_mask, generation_config=config
        )
    prefill = model(
        input_ids=input_ids[:, :-1],
        attention_mask=attention_mask[:, :-1],
        position_ids=prompt_positions(attention_mask)[:, :-1],
        use_cache=True,
    )  # the B prompts once, but their last tokens: (B, heads, W−1, d) per layer
    cache = prefill.cache if hasattr(prefill, "cache") else prefill.past_key_values
    cache.batch_repeat_interleave(k)  # (B·K, heads, W−1, d)
    # The mask covers all W tokens and the cache W−1, so generate feeds only the last one.
    return model.generate(
        input_ids=repeated_ids, attention_mask=repeated_mask, cache=cache, generation_config=config
    )
