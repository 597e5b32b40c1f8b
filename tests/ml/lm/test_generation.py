"""K responses per prompt with the prompt encoded once: the same samples as generate with
num_return_sequences, and only the last prompt token computed for each of the K."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from training.ml.lm.generation import generate_k_per_prompt
from training.ml.lm.lm import encode_prompts, generate_response_ids
from training.ml.seeding import torch_seeded

K = 3


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return load_tiny_lm(tmp_path_factory)


def _left_padded(tokenizer, prompts):
    encoded = encode_prompts(tokenizer, prompts)
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        input_ids[i, width - len(ids) :] = torch.tensor(ids)
        attention_mask[i, width - len(ids) :] = 1
    return input_ids, attention_mask


def _config(tokenizer, *, sample: bool, k: int = 1) -> GenerationConfig:
    return GenerationConfig(
        do_sample=sample,
        temperature=1.0 if sample else None,
        top_p=1.0 if sample else None,
        top_k=0 if sample else None,
        max_new_tokens=12,
        num_return_sequences=k,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _prompts_of_unequal_length(tokenizer) -> list[str]:
    prompts = [*demo_prompts(6), "Hi", ""]  # left padding, and a prompt that is only [bos]
    assert len({len(ids) for ids in encode_prompts(tokenizer, prompts)}) > 1
    return prompts


def test_greedy_responses_equal_plain_generate_on_the_repeated_prompts(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = _prompts_of_unequal_length(tokenizer)
    input_ids, attention_mask = _left_padded(tokenizer, prompts)
    plain = model.generate(
        input_ids=input_ids.repeat_interleave(K, dim=0),
        attention_mask=attention_mask.repeat_interleave(K, dim=0),
        generation_config=_config(tokenizer, sample=False),
    )
    shared = generate_k_per_prompt(
        model=model,
        input_ids=input_ids,
        attention_mask=attention_mask,
        k=K,
        generation_config=_config(tokenizer, sample=False),
    )
    assert torch.equal(shared, plain)

    ids = generate_response_ids(model=model, tokenizer=tokenizer, prompts=prompts, k=K,
                                temperature=0.0, top_p=1.0, max_new_tokens=12, seed=0)  # fmt: skip
    width = input_ids.shape[1]
    for p, per_prompt in enumerate(ids):
        for j, response in enumerate(per_prompt):
            row = plain[p * K + j, width:].tolist()
            assert response == row[: len(response)] and len(response) >= 1


def test_a_seed_samples_what_generate_with_num_return_sequences_samples(tiny_lm):
    model, tokenizer = tiny_lm
    input_ids, attention_mask = _left_padded(tokenizer, _prompts_of_unequal_length(tokenizer))
    config = _config(tokenizer, sample=True, k=K)
    with torch_seeded(5):
        repeated = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=config
        )
    with torch_seeded(5):
        shared = generate_k_per_prompt(
            model=model, input_ids=input_ids, attention_mask=attention_mask, k=K,
            generation_config=config,
        )  # fmt: skip
    assert torch.equal(shared, repeated)
    assert len({tuple(row) for row in shared.tolist()}) > input_ids.shape[0]  # K differ


def test_each_prompt_is_prefilled_once_and_only_its_last_token_k_times(tiny_lm):
    model, tokenizer = tiny_lm
    input_ids, attention_mask = _left_padded(tokenizer, demo_prompts(4))
    shapes: list[tuple[int, ...]] = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _module, args, _output: shapes.append(tuple(args[0].shape))
    )
    try:
        generate_k_per_prompt(
            model=model, input_ids=input_ids, attention_mask=attention_mask, k=K,
            generation_config=_config(tokenizer, sample=True, k=K),
        )  # fmt: skip
    finally:
        hook.remove()
    batch, width = input_ids.shape
    assert shapes[0] == (batch, width - 1)  # the prompts once, without their last token
    assert shapes[1] == (batch * K, 1)  # then each of the K rows: its prompt's last token
    assert all(shape == (batch * K, 1) for shape in shapes[1:])  # and a new token per step
