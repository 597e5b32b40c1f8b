"""Policy gradient on a language model: the KL term, the leave-one-out baseline, and
REINFORCE-LOO and PPO raising a sentiment reward."""

from __future__ import annotations

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from training.ml.lm.lm import frozen_copy, sample_responses
from training.ml.lm.lm_policy_gradient import (
    kl_to_reference,
    leave_one_out_advantages,
    train_lm_policy_gradient,
)
from training.ml.lm.text_teacher import lexicon_reward_fn, lexicon_score, load_lexicon


def mean_lexicon_score(model, tokenizer, lexicon, prompts):
    samples = sample_responses(
        model=model, tokenizer=tokenizer, prompts=prompts, k=4, max_new_tokens=24, seed=123
    )
    scores = [lexicon_score(text, lexicon) for texts in samples for text in texts]
    return sum(scores) / len(scores)


def test_kl_to_reference_is_exactly_zero_for_the_reference_itself(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    prompts = demo_prompts(4)
    responses = [" I love it.", " It was awful and cold.", " Fine.", ""]
    kl = kl_to_reference(
        policy=policy,
        reference=frozen_copy(policy),
        tokenizer=tokenizer,
        prompts=prompts,
        responses=responses,
    )
    assert kl.shape == (4,)
    assert (kl == 0).all()

    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    moved = kl_to_reference(
        policy=policy,
        reference=frozen_copy(load_tiny_lm(tmp_path_factory)[0]),
        tokenizer=tokenizer,
        prompts=prompts,
        responses=responses,
    )
    assert (moved != 0).all()


def test_leave_one_out_advantage_subtracts_the_mean_of_the_other_samples():
    returns = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[1 - 4.0, 2 - 3.5, 6 - 1.5], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(leave_one_out_advantages(returns), expected)
    with pytest.raises(ValueError, match="k >= 2"):
        leave_one_out_advantages(torch.zeros(3, 1))


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_policy_gradient_raises_the_lexicon_reward_of_samples(tmp_path_factory, algorithm):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    reference = frozen_copy(policy)
    lexicon = load_lexicon()
    prompts = demo_prompts(40)
    heldout = prompts[:16]
    before = mean_lexicon_score(policy, tokenizer, lexicon, heldout)

    metrics = train_lm_policy_gradient(
        algorithm=algorithm,
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        reward_fn=lexicon_reward_fn(lexicon),
        prompts=prompts,
        k=4,
        beta=0.05,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=24,
        iterations=10,
        prompts_per_iteration=8,
        lr=1e-3,
        seed=0,
    )
    after = mean_lexicon_score(policy, tokenizer, lexicon, heldout)
    assert after > before + 1.0, (before, after)
    assert metrics["reward/mean"] > metrics["reward/initial_mean"]
    assert metrics["kl"] > 0  # it moved away from the reference
    assert metrics["objective/rlhf_reward"] == pytest.approx(
        metrics["objective/scores"] - 0.05 * metrics["objective/kl"], rel=1e-4
    )
    if algorithm == "ppo":
        assert 0 <= metrics["policy/clipfrac"] <= 1


def test_policy_gradient_needs_two_samples_per_prompt(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    with pytest.raises(ValueError, match="k must be >= 2"):
        train_lm_policy_gradient(
            algorithm="reinforce",
            policy=policy,
            reference=frozen_copy(policy),
            tokenizer=tokenizer,
            reward_fn=lexicon_reward_fn(load_lexicon()),
            prompts=demo_prompts(2),
            k=1,
            seed=0,
        )
