"""What a text item is to the language model: (context, response) strings.

A plain item is its prompt and text. A conversation (labeling/conversations.py) is
rendered by training/ml/lm/chat.py: the prompt's messages and the candidate's earlier
turns are the context, the final assistant turn the response, so DPO, the reward model
and the policy gradient put their loss on the final turn only.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from labeling.models import Item
from training.ml.lm import chat


def is_conversation(item: Item) -> bool:
    return item.messages is not None


def item_texts(item: Item, tokenizer: PreTrainedTokenizerBase) -> tuple[str, str]:
    """(context, response) of ``item`` for ``tokenizer``'s model."""
    if not is_conversation(item):
        return item.prompt, item.text
    prompt = item.prompt_messages or [{"role": "user", "content": item.prompt}]
    return chat.conversation_texts(tokenizer, prompt, item.messages)
