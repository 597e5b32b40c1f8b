"""Conversations on the LM side: the context renders with the model's chat template (or
plain role lines without one), and DPO, the policy gradient and the reward model put
their gradient on the final assistant turn only, never on the prompt or earlier turns."""

from __future__ import annotations

import copy

import pytest
import torch
from tokenizers import processors

from tests.ml.lm.lm_fixtures import load_tiny_lm
from training.ml.lm import chat, lm
from training.ml.lm.demo_lm import DEMO_CHAT_TEMPLATE, EOS_TOKEN
from training.ml.lm.dpo import _all_pair_logps, _pair_logps, dpo_loss
from training.ml.lm.lm_reward import LMRewardModel

# A 3-turn conversation (system, user, assistant, user) and two candidate final turns.
PROMPT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "How was the park?"},
    {"role": "assistant", "content": "It was lovely."},
    {"role": "user", "content": "And the cafe?"},
]
CHOSEN = [{"role": "assistant", "content": " The cafe is great."}]
REJECTED = [{"role": "assistant", "content": " The cafe is awful and dull."}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_tiny_lm(tmp_path_factory)


def test_the_demo_tokenizer_renders_a_conversation_in_the_corpus_words(tiny):
    _, tokenizer = tiny
    assert tokenizer.chat_template == DEMO_CHAT_TEMPLATE  # saved and loaded with the model
    context, response = chat.conversation_texts(tokenizer, PROMPT, CHOSEN)
    assert context == (
        "System: Answer briefly.\nQuestion: How was the park?\n"
        f"Answer: It was lovely.{EOS_TOKEN}Question: And the cafe?\nAnswer:"
    )
    assert response == " The cafe is great."
    # the earlier assistant turn's eos is the eos token, as between the corpus's examples
    assert lm.encode_prompts(tokenizer, [context])[0].count(tokenizer.eos_token_id) == 1


def test_a_candidates_earlier_turns_are_context_and_only_its_last_is_the_response(tiny):
    _, tokenizer = tiny
    candidate = [
        {"role": "assistant", "content": "Let me think."},
        {"role": "assistant", "content": " It is great."},
    ]
    context, response = chat.conversation_texts(tokenizer, PROMPT[:2], candidate)
    assert context.endswith(f"Answer: Let me think.{EOS_TOKEN}Answer:")
    assert response == " It is great."
    with pytest.raises(ValueError, match="at least one assistant message"):
        chat.conversation_texts(tokenizer, PROMPT[:2], [])


def test_without_a_chat_template_the_context_is_plain_role_lines(tiny):
    _, tokenizer = tiny
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    context, response = chat.conversation_texts(plain, PROMPT, CHOSEN)
    assert context == (
        "system: Answer briefly.\nuser: How was the park?\nassistant: It was lovely.\n"
        "user: And the cafe?\nassistant:"
    )
    assert response == " The cafe is great."


def test_a_template_that_writes_a_bos_gives_one_bos_when_the_tokenizer_adds_one(tiny):
    _, tokenizer = tiny
    adding = copy.deepcopy(tokenizer)
    bos = adding.bos_token_id
    adding._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{EOS_TOKEN} $A", special_tokens=[(EOS_TOKEN, bos)]
    )
    adding.chat_template = "{{ bos_token }}" + DEMO_CHAT_TEMPLATE
    assert chat.adds_bos(adding) and not chat.adds_bos(tokenizer)
    context = chat.render_context(adding, PROMPT[:2])
    assert context == "System: Answer briefly.\nQuestion: How was the park?\nAnswer:"
    ids = lm.encode_prompts(adding, [context])[0]
    assert ids[0] == bos and ids[1] != bos  # one bos, the tokenizer's
    # a tokenizer that adds none keeps the template's own bos
    writes = copy.deepcopy(tokenizer)
    writes.chat_template = "{{ bos_token }}" + DEMO_CHAT_TEMPLATE
    assert chat.render_context(writes, PROMPT[:2]).startswith(EOS_TOKEN)


def _capture(policy) -> tuple[dict, list, list]:
    """Record the rows the policy is given and its logits (their gradient retained)."""
    inputs: dict = {}

    def keep_inputs(_module, _args, kwargs):
        inputs["input_ids"] = kwargs["input_ids"]

    def keep_logits(_module, _inputs, output):
        output.retain_grad()
        logits.append(output)

    logits: list = []
    handles = [
        policy.register_forward_pre_hook(keep_inputs, with_kwargs=True),
        policy.lm_head.register_forward_hook(keep_logits),
    ]
    return inputs, logits, handles


def _texts(tokenizer):
    context, chosen = chat.conversation_texts(tokenizer, PROMPT, CHOSEN)
    _, rejected = chat.conversation_texts(tokenizer, PROMPT, REJECTED)
    return context, chosen, rejected


def _batch(tokenizer, context, responses, model):
    """The right-padded rows the trainers score, as lm.tokenize_prompt_response makes
    them, and the number of context tokens (the same in every row)."""
    batch = lm.tokenize_prompt_response(
        tokenizer=tokenizer,
        prompts=[context] * len(responses),
        responses=responses,
        max_length=lm.max_positions(model),
    )
    n_context = len(lm.encode_prompts(tokenizer, [context])[0])
    # the context is all of it: the system turn, both user turns and the earlier answer
    assert tokenizer.decode(batch.input_ids[0, :n_context]) == context
    assert (batch.response_mask[:, :n_context] == 0).all()
    assert (batch.response_mask[:, n_context:].sum(dim=-1) > 0).all()
    return batch, n_context


def _assert_final_turn_only(grad, batch, n_context):
    """grad: (B, T, V) of the logits. The logits at t predict token t+1: exactly zero
    wherever t + 1 is a context token and past each row's end; non-zero at every position
    predicting a token of the final turn (its content and eos)."""
    for row in range(grad.shape[0]):
        length = int(batch.attention_mask[row].sum())
        assert (grad[row, : n_context - 1] == 0).all()
        assert (grad[row, length - 1 :] == 0).all()
        predicting_response = grad[row, n_context - 1 : length - 1]  # (response length, V)
        assert (predicting_response.abs().sum(dim=-1) > 0).all()


def test_dpo_on_a_conversation_puts_no_gradient_on_the_prompt_or_earlier_turns(tiny):
    policy, tokenizer = tiny
    reference = lm.frozen_copy(policy)
    with torch.no_grad():  # a reference unlike the policy, as after a round of training
        for p in reference.parameters():
            p.add_(0.01 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    context, chosen, rejected = _texts(tokenizer)
    # as train_dpo encodes its pairs, and as it scores them
    ids = {
        "prompt_ids": lm.encode_prompts(tokenizer, [context]),
        "chosen_ids": lm.encode_responses(tokenizer, [chosen]),
        "rejected_ids": lm.encode_responses(tokenizer, [rejected]),
        "pad_token_id": tokenizer.pad_token_id,
        "device": "cpu",
    }
    reference_chosen, reference_rejected = _all_pair_logps(
        model=reference, rows=2, dtype=torch.float32, **ids
    )
    inputs, logits, handles = _capture(policy)
    try:
        policy_chosen, policy_rejected = _pair_logps(model=policy, **ids)
    finally:
        for handle in handles:
            handle.remove()
    losses, _, _ = dpo_loss(
        policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=0.1
    )
    losses.mean().backward()

    batch, n_context = _batch(tokenizer, context, [chosen, rejected], policy)
    assert torch.equal(inputs["input_ids"], batch.input_ids)  # the chosen row, the rejected
    _assert_final_turn_only(logits[0].grad, batch, n_context)


def test_the_policy_gradient_on_a_conversation_puts_no_gradient_on_the_context(tiny):
    policy, tokenizer = tiny
    context, chosen, rejected = _texts(tokenizer)
    batch, n_context = _batch(tokenizer, context, [chosen, rejected], policy)
    _, logits, handles = _capture(policy)
    try:
        logps = lm.token_logprobs(model=policy, batch=batch)  # (N, T−1), as the trainer
    finally:
        for handle in handles:
            handle.remove()
    advantages = torch.tensor([1.0, -1.0])
    # REINFORCE with a baseline, as train_lm_policy_gradient computes it; PPO's ratios
    # are of the same masked token_logprobs
    (-(advantages * logps.sum(dim=-1)).mean()).backward()
    _assert_final_turn_only(logits[0].grad, batch, n_context)


def test_the_reward_model_reads_a_conversation_at_the_end_of_its_final_turn(tiny):
    policy, tokenizer = tiny
    context, chosen, rejected = _texts(tokenizer)
    batch, _ = _batch(tokenizer, context, [chosen, rejected], policy)
    model = LMRewardModel.from_causal_lm(policy, tokenizer, seed=0)
    hidden: list = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        hidden.append(output)

    handle = model.backbone.ln_f.register_forward_hook(keep)
    try:
        rewards = model.rewards([context] * 2, [chosen, rejected])  # (2,)
    finally:
        handle.remove()
    (rewards[0] - rewards[1]).backward()
    grad = hidden[0].grad  # (2, T, H)
    for row in range(2):
        last = int(batch.attention_mask[row].sum()) - 1  # the final turn's eos
        assert (grad[row, last] != 0).any()
        grad[row, last] = 0
        assert (grad[row] == 0).all()  # nothing read from the context, nor the padding
