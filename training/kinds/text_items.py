"""What a text item is to the language model: (context, response) strings.

A plain item is its prompt and text. A conversation (labeling/conversations.py) is
rendered by training/ml/lm/chat.py: the prompt's messages and the candidate's earlier
turns are the context, the final assistant turn the response, so DPO, the reward model
and the policy gradient put their loss on the final turn only.

A prompt to sample from (config.prompts, an imported item's prompt) is a string or a
message list; context_of renders it, and sampled_item stores a sample as the item it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from labeling import conversations
from labeling.models import Item
from training.artifacts import NewItem
from training.ml.lm import chat

Prompt = str | list[dict[str, str]]


def is_conversation(item: Item) -> bool:
    return item.messages is not None


def item_texts(item: Item, tokenizer: PreTrainedTokenizerBase) -> tuple[str, str]:
    """(context, response) of ``item`` for ``tokenizer``'s model."""
    if not is_conversation(item):
        return item.prompt, item.text
    prompt = item.prompt_messages or [{"role": "user", "content": item.prompt}]
    return chat.conversation_texts(tokenizer, prompt, item.messages)


def shared_context(texts: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    """One context for (context, response) texts judged together (a ranking's, a pair's),
    and each response after it. Candidates that share their earlier turns (the usual case,
    and plain items of one prompt) share their context as it is. Where earlier turns
    differ, the context is the texts' longest common prefix and each response begins with
    the rest of its own context: the loss then covers the turns that differ too, never the
    shared ones."""
    contexts = [context for context, _ in texts]
    if all(context == contexts[0] for context in contexts):
        return contexts[0], [response for _, response in texts]
    common = min(contexts)
    for context in contexts:
        while not context.startswith(common):
            common = common[:-1]
    return common, [context[len(common) :] + response for context, response in texts]


def context_of(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> str:
    """The text to sample a response to ``prompt`` from: a string as it is, a message list
    rendered up to the assistant's turn."""
    if isinstance(prompt, str):
        return prompt
    return chat.render_context(tokenizer, prompt)


def sampled_item(prompt: Prompt, sample: str, data: dict[str, Any]) -> NewItem:
    """A sampled response to ``prompt`` as an item: plain text, or for a message-list
    prompt a conversation item whose one assistant message is the sample."""
    if isinstance(prompt, str):
        return NewItem(data=data, prompt=prompt, text=sample)
    return NewItem(
        data=data,
        prompt=conversations.flatten(prompt),
        text=sample,
        prompt_messages=list(prompt),
        messages=[{"role": "assistant", "content": sample}],
    )
