"""A text round's evaluation against the reference policy, the project's base model
(config.model_dir): the teacher's win rate over it and the sequence KL to it, on held-out
prompts (training/ml/lm/policy_eval.py), a conversation's rendered with the model's chat
template (text_items.context_of). Its metric names, which the dashboard, run_loop
and benchmarks/text_loop.py read: teacher/win_rate, teacher/win_rate_se, kl/sequence,
teacher/mean_score."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from training.kinds.config import TextConfig
from training.kinds.text_items import Prompt, context_of
from training.ml.lm import lm, lora
from training.ml.lm.policy_eval import compare_with_reference
from training.ml.lm.text_teacher import load_lexicon

MAX_EVAL_PROMPTS = 32  # the evaluation's cost: 2 samples and 2 scorings per prompt
DEFAULT_EVAL_PROMPT = "Question: How was your day?\nAnswer:"


def eval_prompts(config: TextConfig) -> list[Prompt]:
    """config.eval_prompts, else the first 8 of config.prompts, else one default prompt;
    at most MAX_EVAL_PROMPTS. Each a string or, for a conversation, a message list."""
    prompts = list(config.eval_prompts) or list(config.prompts[:8]) or [DEFAULT_EVAL_PROMPT]
    return prompts[:MAX_EVAL_PROMPTS]


def reference_for(policy, config: TextConfig) -> Callable[[], AbstractContextManager]:
    """use_reference() for the evaluation: a LoRA policy's base with its adapters switched
    off (no copy), else the base loaded from config.model_dir for the duration."""

    @contextmanager
    def use_reference() -> Iterator:
        if lora.has_adapter(policy):
            with policy.disable_adapter():
                yield policy
        else:
            reference, _ = lm.load_causal_lm(config.model_dir, device=policy.device)
            yield reference

    return use_reference


def reference_metrics(
    policy, tokenizer, config: TextConfig, *, seed: int, progress: Callable[[float], None]
) -> dict[str, float]:
    """The trained policy against the reference on eval_prompts(config), reproducible from
    seed; progress(fraction) as it goes."""
    return compare_with_reference(
        policy=policy,
        use_reference=reference_for(policy, config),
        tokenizer=tokenizer,
        prompts=[context_of(tokenizer, prompt) for prompt in eval_prompts(config)],
        lexicon=load_lexicon(),
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        seed=seed,
        device=policy.device,
        progress=progress,
    ).metrics()
