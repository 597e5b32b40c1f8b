"""The per-round comparison with the reference: a policy against itself wins half the time
at a KL of exactly 0; a policy trained toward the lexicon wins more than half."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from training.ml.lm.lm import frozen_copy
from training.ml.lm.lm_policy_gradient import train_lm_policy_gradient
from training.ml.lm.policy_eval import compare_with_reference, win_rate_of
from training.ml.lm.text_teacher import lexicon_reward_fn, load_lexicon

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 16}


def test_win_rate_counts_ties_as_half_with_the_standard_error_of_the_mean():
    win_rate, se = win_rate_of([3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 5.0, -1.0])
    assert win_rate == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    outcomes = [1.0, 0.5, 0.0, 1.0]
    mean = sum(outcomes) / 4
    sd = (sum((o - mean) ** 2 for o in outcomes) / 3) ** 0.5
    assert se == pytest.approx(sd / 2)
    with pytest.raises(ValueError, match="as many"):
        win_rate_of([1.0], [1.0, 2.0])


def test_a_policy_against_itself_wins_about_half_at_a_sequence_kl_of_zero(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    comparison = compare_with_reference(
        policy=policy, use_reference=lambda: nullcontext(policy), tokenizer=tokenizer,
        prompts=demo_prompts(32), lexicon=load_lexicon(), seed=0, **SAMPLING,
    )  # fmt: skip
    metrics = comparison.metrics()
    assert metrics["kl/sequence"] == 0.0 and (comparison.log_ratios == 0).all()
    assert abs(metrics["teacher/win_rate"] - 0.5) <= 3 * metrics["teacher/win_rate_se"] + 0.05
    assert metrics["eval/n_prompts"] == 32
    again = compare_with_reference(
        policy=policy, use_reference=lambda: nullcontext(policy), tokenizer=tokenizer,
        prompts=demo_prompts(32), lexicon=load_lexicon(), seed=0, **SAMPLING,
    ).metrics()  # fmt: skip
    assert again == metrics  # the same seed, the same figures


def test_a_policy_trained_toward_the_lexicon_wins_over_its_reference(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    reference = frozen_copy(policy)
    lexicon = load_lexicon()
    prompts = demo_prompts(48)
    train_lm_policy_gradient(
        algorithm="reinforce", policy=policy, reference=reference, tokenizer=tokenizer,
        reward_fn=lexicon_reward_fn(lexicon), prompts=prompts[16:], k=4, beta=0.05,
        iterations=10, prompts_per_iteration=8, lr=1e-3, seed=0, **SAMPLING,
    )  # fmt: skip
    seen: list[float] = []
    metrics = compare_with_reference(
        policy=policy, use_reference=lambda: nullcontext(reference), tokenizer=tokenizer,
        prompts=prompts[:16], lexicon=lexicon, seed=0, progress=seen.append, **SAMPLING,
    ).metrics()  # fmt: skip
    assert metrics["teacher/win_rate"] > 0.5, metrics
    assert metrics["teacher/mean_score"] > metrics["teacher/reference_mean_score"]
    assert metrics["kl/sequence"] > 0
    assert seen[-1] == 1.0
