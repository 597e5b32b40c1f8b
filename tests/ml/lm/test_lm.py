"""Causal LMs as policies: the demo LM builds and loads, sampling is seeded, and the
log-probability of a response counts the response's tokens only."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm, tiny_lm_dir
from training.ml.lm.demo_lm import DEMO_CORPUS, DEMO_PROMPTS, read_prompts
from training.ml.lm.lm import (
    collate_prompt_response,
    encode_prompts,
    encode_responses,
    load_causal_lm,
    load_policy,
    response_logprobs,
    sample_responses,
    save_policy,
    sequence_logprobs,
    token_logprobs,
    tokenize_prompt_response,
)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return load_tiny_lm(tmp_path_factory)


def test_build_demo_lm_makes_a_loadable_directory_that_samples_k_strings_per_prompt(
    tmp_path_factory,
):
    model, tokenizer = load_causal_lm(tiny_lm_dir(tmp_path_factory))
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|pad|>"
    prompts = demo_prompts(3)
    samples = sample_responses(
        model=model, tokenizer=tokenizer, prompts=prompts, k=4, max_new_tokens=24, seed=0
    )
    assert len(samples) == 3
    assert all(len(per_prompt) == 4 for per_prompt in samples)
    assert all(isinstance(text, str) for per_prompt in samples for text in per_prompt)
    # It learned the corpus's vocabulary: most sampled words are real words of the corpus.
    corpus_words = set(DEMO_CORPUS.read_text().lower().split())
    sampled = [w for texts in samples for text in texts for w in text.lower().split()]
    assert sum(w in corpus_words for w in sampled) / len(sampled) > 0.5


def test_sample_responses_is_reproducible_from_its_seed(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = demo_prompts(2)

    def sample(seed):
        return sample_responses(
            model=model, tokenizer=tokenizer, prompts=prompts, k=3, max_new_tokens=16, seed=seed
        )

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_sampling_reports_its_progress_batch_by_batch(tiny_lm):
    from training.ml.lm.lm import generate_response_ids

    model, tokenizer = tiny_lm
    seen: list[float] = []
    generate_response_ids(model=model, tokenizer=tokenizer, prompts=demo_prompts(5), k=2,
                          temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0,
                          batch_size=2, progress=seen.append)  # fmt: skip
    assert seen == [0.4, 0.8, 1.0]  # after each of the batches of 2, 2 and 1 prompts


def test_save_policy_round_trips_through_save_pretrained(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    save_policy(model, tokenizer, tmp_path / "policy")
    loaded, loaded_tokenizer = load_policy(tmp_path / "policy")
    prompts, responses = demo_prompts(2), [" I love it.", " It was awful."]
    before = sequence_logprobs(
        model=model, tokenizer=tokenizer, prompts=prompts, responses=responses
    )
    after = sequence_logprobs(
        model=loaded, tokenizer=loaded_tokenizer, prompts=prompts, responses=responses
    )
    torch.testing.assert_close(before, after)


def test_load_causal_lm_says_what_to_do_when_the_directory_is_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_demo_lm"):
        load_causal_lm(tmp_path)


def test_response_mask_covers_the_response_and_its_eos_only(tiny_lm):
    _, tokenizer = tiny_lm
    prompts = ["Question: How was the park?\nAnswer:", "Question: Hi?\nAnswer:"]
    responses = [" It was lovely.", " Fine."]
    batch = tokenize_prompt_response(tokenizer=tokenizer, prompts=prompts, responses=responses)
    prompt_ids = encode_prompts(tokenizer, prompts)
    response_ids = encode_responses(tokenizer, responses)
    for i in range(2):
        n_prompt, n_response = len(prompt_ids[i]), len(response_ids[i])
        assert response_ids[i][-1] == tokenizer.eos_token_id
        assert batch.attention_mask[i].sum() == n_prompt + n_response
        assert batch.response_mask[i, :n_prompt].sum() == 0
        assert batch.response_mask[i].sum() == n_response
        assert batch.input_ids[i, n_prompt : n_prompt + n_response].tolist() == response_ids[i]


def test_sequence_logprobs_sum_over_response_tokens_only(tiny_lm):
    model, tokenizer = tiny_lm
    prompt, response = "Question: How was the park?\nAnswer:", " It was lovely."
    prompt_ids = encode_prompts(tokenizer, [prompt])[0]
    response_ids = encode_responses(tokenizer, [response])[0]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits[0], dim=-1)  # (T, V)
    by_hand = sum(
        logps[len(prompt_ids) + t - 1, token].item() for t, token in enumerate(response_ids)
    )
    ours = sequence_logprobs(
        model=model, tokenizer=tokenizer, prompts=[prompt], responses=[response]
    )
    assert ours.shape == (1,)
    assert math.isclose(ours.item(), by_hand, rel_tol=1e-5)


def test_prompt_tokens_and_padding_do_not_enter_the_response_logprob(tiny_lm):
    model, tokenizer = tiny_lm
    prompt = "Question: How was the park?\nAnswer:"
    response = " It was lovely."
    batch = tokenize_prompt_response(tokenizer=tokenizer, prompts=[prompt], responses=[response])
    with torch.no_grad():
        per_token = token_logprobs(model=model, batch=batch)  # (1, T−1)
        n_prompt = len(encode_prompts(tokenizer, [prompt])[0])
        assert (per_token[0, : n_prompt - 1] == 0).all()  # prompt positions are masked

        # Marking more of the row as "prompt" (not scored) changes the sum by exactly the
        # log-probabilities of those tokens, and nothing else.
        shorter = type(batch)(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            response_mask=batch.response_mask.clone(),
        )
        shorter.response_mask[0, n_prompt] = 0
        dropped = per_token[0, n_prompt - 1]
        torch.testing.assert_close(
            response_logprobs(model=model, batch=shorter),
            response_logprobs(model=model, batch=batch) - dropped,
        )

        # Alone or batched with longer rows (so padded), the log-probability is the same.
        alone = sequence_logprobs(
            model=model, tokenizer=tokenizer, prompts=[prompt], responses=[response]
        )
        padded = sequence_logprobs(
            model=model,
            tokenizer=tokenizer,
            prompts=[prompt, prompt + " " + "very " * 10],
            responses=[response, response * 4],
        )
        torch.testing.assert_close(padded[:1], alone, rtol=1e-5, atol=1e-5)


def test_collate_over_max_length_cuts_the_prompt_first():
    batch = collate_prompt_response(
        prompt_ids=[[1, 2, 3, 4, 5]], response_ids=[[6, 7, 8]], pad_token_id=0, max_length=5
    )
    assert batch.input_ids.tolist() == [[4, 5, 6, 7, 8]]
    assert batch.response_mask.tolist() == [[0, 0, 1, 1, 1]]


def test_demo_files_are_what_make_corpus_writes():
    spec = importlib.util.spec_from_file_location(
        "make_corpus", DEMO_CORPUS.parent / "make_corpus.py"
    )
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    corpus = DEMO_CORPUS.read_text(encoding="utf-8")
    assert 150_000 <= len(corpus.encode()) <= 300_000
    assert make_corpus.make_corpus(target_bytes=220_000, seed=0) == corpus
    assert make_corpus.make_prompts(n=40, seed=1) == DEMO_PROMPTS.read_text(encoding="utf-8")
    prompts = read_prompts()
    assert len(prompts) == 40
    assert all(p.startswith("Question: ") and p.endswith("\nAnswer:") for p in prompts)
