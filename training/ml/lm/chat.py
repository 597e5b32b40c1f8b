"""Conversations for a causal LM: chat messages rendered to the text a model reads.

A conversation to train on is a prompt (messages) and a candidate (assistant messages).
Everything but the candidate's final message is context: rendered with the tokenizer's
chat template (``add_generation_prompt``) when it has one, else as plain ``role: content``
lines ending in ``assistant:``. The final message's content is the response, the only
tokens any loss is computed on (lm.tokenize_prompt_response masks the rest).

The context is tokenized later with the tokenizer's special tokens (lm.encode_prompts),
so a bos that the template writes itself is cut from the text when the tokenizer adds one
anyway: one bos, not two.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

Message = dict[str, str]


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether encoding with special tokens puts the bos token first."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return with_special[:1] == [bos] and without[:1] != [bos]


def render_context(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> str:
    """The text before the next assistant turn of ``messages``."""
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if not has_chat_template(tokenizer):
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        text = text[len(bos) :]  # lm.encode_prompts adds it back
    return text


def conversation_texts(
    tokenizer: PreTrainedTokenizerBase,
    prompt: Sequence[Message],
    candidate: Sequence[Message],
) -> tuple[str, str]:
    """(context, response) of a candidate answering ``prompt``: the context renders the
    prompt and the candidate's earlier turns; the response is its final turn's content."""
    if not candidate:
        raise ValueError("A candidate needs at least one assistant message.")
    context = render_context(tokenizer, [*prompt, *candidate[:-1]])
    return context, candidate[-1]["content"]
