"""bf16 forward passes in the LM reward model and the LM policy gradient: autocast to bf16
changes the transformer's arithmetic, not the fp32 weights, head or losses, and training
still learns."""

from __future__ import annotations

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from tests.ml.lm.test_lm_reward import counting_rankings
from training.ml.lm.lm import frozen_copy
from training.ml.lm.lm_policy_gradient import train_lm_policy_gradient
from training.ml.lm.lm_reward import LMRewardModel
from training.ml.lm.lm_reward_fit import fit_lm_reward_model


def test_bf16_rewards_are_close_to_fp32_ones_but_computed_in_bf16(tmp_path_factory):
    model, tokenizer = load_tiny_lm(tmp_path_factory)
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=0)
    prompts, responses = demo_prompts(4), [" It was great.", " No.", " The bus was late.", " Ok"]

    with torch.no_grad():
        fp32 = reward_model.rewards(prompts, responses)
        bf16 = reward_model.rewards(prompts, responses, dtype=torch.bfloat16)

    assert bf16.dtype == torch.float32  # the head runs in fp32 after the autocast
    assert not torch.equal(bf16, fp32)  # the transformer did compute in bf16
    assert torch.allclose(bf16, fp32, atol=0.05)
    assert all(p.dtype == torch.float32 for p in reward_model.parameters())


def test_a_bf16_reward_fit_learns_the_rule(tmp_path_factory):
    model, tokenizer = load_tiny_lm(tmp_path_factory)
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=0)

    fit = fit_lm_reward_model(
        model=reward_model,
        rankings=counting_rankings(40, seed=1),
        epochs=3,
        lr=1e-3,
        seed=0,
        dtype="bfloat16",
    )

    assert fit.train_accuracy > 0.7, fit
    assert all(p.dtype == torch.float32 for p in reward_model.parameters())


def test_a_bf16_policy_gradient_step_trains_fp32_weights(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    before = {k: v.clone() for k, v in policy.state_dict().items()}

    metrics = train_lm_policy_gradient(
        algorithm="ppo",
        policy=policy,
        reference=frozen_copy(policy),
        tokenizer=tokenizer,
        reward_fn=lambda prompts, responses: torch.tensor([float(len(r)) for r in responses]),
        prompts=demo_prompts(4),
        k=2,
        max_new_tokens=8,
        iterations=1,
        prompts_per_iteration=2,
        update_epochs=1,
        seed=0,
        dtype="bfloat16",
    )

    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    assert metrics["policy/approxkl"] == pytest.approx(0.0, abs=0.05)
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(policy.state_dict()[k].dtype == torch.float32 for k in changed)
