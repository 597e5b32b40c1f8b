"""DPO's speed options change the arithmetic's precision or the amount of work, never the
objective: bf16 autocast gives fp32's losses to a tolerance, metrics without the closing
pass are what the training batches computed, and pairs that share a response score it once
(a K-ranking's C(K, 2) pairs meet in a batch)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from tests.ml.lm.test_dpo import sentiment_pairs
from training.ml.lm import dpo
from training.ml.lm.dpo import dpo_loss, prompt_grouped_order, train_dpo
from training.ml.lm.lm import (
    forward_dtype,
    frozen_copy,
    native_bf16,
    sequence_logprobs,
    unique_sequences,
)

POSITIVE = ["lovely", "great", "wonderful", "good"]


def ranking_pairs(prompts, *, k=4):
    """Each prompt's C(k, 2) (prompt, better, worse) pairs, best first, in a row: as
    training/kinds/text.py gives DPO a ranking."""
    pairs = []
    for prompt in prompts:
        ranked = [f" I think the cafe is {word}." for word in POSITIVE[:k]]
        pairs += [(prompt, ranked[i], ranked[j]) for i in range(k) for j in range(i + 1, k)]
    return pairs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_tiny_lm(tmp_path_factory)


def recorded_steps(monkeypatch):
    """Wrap dpo_loss to keep each training step's (losses, chosen, rejected, logps)."""
    steps = []

    def recording(policy_chosen, policy_rejected, *args, **kwargs):
        out = dpo_loss(policy_chosen, policy_rejected, *args, **kwargs)
        if policy_chosen.requires_grad:
            steps.append([t.detach() for t in (*out, policy_chosen, policy_rejected)])
        return out

    monkeypatch.setattr(dpo, "dpo_loss", recording)
    return steps


def test_bf16_autocast_gives_the_fp32_losses_within_a_tolerance(tiny, monkeypatch):
    policy, tokenizer = tiny
    pairs = sentiment_pairs(demo_prompts(32), seed=0)
    steps = {}
    for dtype in ("float32", "bfloat16"):
        steps[dtype] = recorded_steps(monkeypatch)
        train_dpo(
            policy=copy.deepcopy(policy),
            tokenizer=tokenizer,
            pairs=pairs,
            dtype=dtype,
            lr=1e-3,
            batch_size=8,
            seed=0,
        )
    fp32 = torch.stack([s[0].mean() for s in steps["float32"]])  # (4,) per-step losses
    bf16 = torch.stack([s[0].mean() for s in steps["bfloat16"]])
    assert fp32[0].item() == pytest.approx(math.log(2), abs=1e-6)  # π_θ = π_ref at step 1
    assert bf16[0].item() == pytest.approx(math.log(2), abs=1e-6)
    torch.testing.assert_close(bf16, fp32, atol=5e-3, rtol=0)
    # the log-probabilities themselves agree to bf16's precision (a few tenths of a percent)
    torch.testing.assert_close(steps["bfloat16"][0][3], steps["float32"][0][3], rtol=1e-2, atol=0)


def test_forward_dtype_auto_is_bf16_only_where_the_hardware_has_it():
    expected = torch.bfloat16 if native_bf16("cpu") else torch.float32
    assert forward_dtype("auto", "cpu") == expected
    assert forward_dtype("float32", "cpu") == torch.float32
    assert forward_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="auto, float32, bfloat16"):
        forward_dtype("fp16", "cpu")


def test_metrics_without_the_closing_pass_are_the_training_batches_means(tiny, monkeypatch):
    policy, tokenizer = tiny
    pairs = sentiment_pairs(demo_prompts(20), seed=0)
    steps = recorded_steps(monkeypatch)
    rows = []
    reference, policy = frozen_copy(policy), copy.deepcopy(policy)
    policy.register_forward_hook(lambda m, args, kw, out: rows.append(1), with_kwargs=True)
    metrics = train_dpo(
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        pairs=pairs,
        closing_pass=False,
        epochs=2,
        lr=1e-3,
        batch_size=8,
        seed=0,
    )
    assert len(rows) == 2 * 3  # 2 epochs of 3 batches, and no pass after them
    last_epoch = steps[3:]  # the second epoch's 3 steps
    losses, chosen, rejected, logp_w, logp_l = (
        torch.cat([s[i] for s in last_epoch]) for i in range(5)
    )
    assert metrics["rewards/accuracies"] == pytest.approx((chosen > rejected).float().mean().item())
    assert metrics["rewards/margins"] == pytest.approx((chosen - rejected).mean().item(), abs=1e-6)
    assert metrics["rewards/chosen"] == pytest.approx(chosen.mean().item(), abs=1e-6)
    assert metrics["logps/chosen"] == pytest.approx(logp_w.mean().item(), rel=1e-6)
    assert metrics["logps/rejected"] == pytest.approx(logp_l.mean().item(), rel=1e-6)
    assert metrics["loss"] == pytest.approx(losses.mean().item(), rel=1e-6)
    step_means = [s[0].mean().item() for s in last_epoch]
    assert metrics["train/loss"] == pytest.approx(sum(step_means) / 3, rel=1e-6)


def test_without_training_the_batch_metrics_equal_the_closing_pass(tiny):
    policy, tokenizer = tiny
    pairs = sentiment_pairs(demo_prompts(12), seed=0)
    reference = frozen_copy(policy)
    common = {
        "reference": reference,
        "tokenizer": tokenizer,
        "pairs": pairs,
        "lr": 0.0,
        "dtype": "float32",  # bf16's rounding would differ with the rows batched together
        "seed": 0,
    }
    # lr 0 but a policy unlike the reference: the rewards are not all zero
    policy = copy.deepcopy(policy)
    with torch.no_grad():
        policy.lm_head.weight.mul_(1.1)
    closing = train_dpo(policy=policy, closing_pass=True, **common)
    batches = train_dpo(policy=policy, closing_pass=False, **common)
    assert closing["rewards/margins"] != 0
    for name in ("rewards/chosen", "rewards/margins", "rewards/accuracies", "logps/chosen", "loss"):
        assert batches[name] == pytest.approx(closing[name], rel=1e-5, abs=1e-6), name


def test_a_rankings_pairs_share_a_batch_and_score_each_response_once(tiny):
    policy, tokenizer = tiny
    prompts = demo_prompts(4)
    pairs = ranking_pairs(prompts)  # 4 prompts × 6 pairs, 4 distinct responses each
    reference = frozen_copy(policy)
    policy = copy.deepcopy(policy)
    policy_rows, reference_rows = [], []
    policy.register_forward_hook(
        lambda m, args, kw, out: policy_rows.append(len(kw["input_ids"])), with_kwargs=True
    )
    reference.register_forward_hook(
        lambda m, args, kw, out: reference_rows.append(len(kw["input_ids"])), with_kwargs=True
    )
    train_dpo(
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        pairs=pairs,
        closing_pass=False,
        batch_size=12,
        lr=1e-4,
        seed=0,
    )
    # 24 pairs name 16 distinct (prompt, response) rows; 12 pairs are 2 whole rankings
    assert reference_rows == [16]  # one pass of up to 2 × 12 rows
    assert policy_rows == [8, 8]  # not 24 and 24


def test_scoring_the_distinct_rows_gives_each_pairs_own_log_probabilities(tiny):
    policy, tokenizer = tiny
    pairs = ranking_pairs(demo_prompts(2), k=3)
    chosen, rejected = dpo._pair_logps(
        model=policy,
        prompt_ids=dpo.encode_prompts(tokenizer, [p for p, _, _ in pairs]),
        chosen_ids=dpo.encode_responses(tokenizer, [c for _, c, _ in pairs]),
        rejected_ids=dpo.encode_responses(tokenizer, [r for _, _, r in pairs]),
        pad_token_id=tokenizer.pad_token_id,
        device="cpu",
    )
    prompts = [p for p, _, _ in pairs]
    each = sequence_logprobs(
        model=policy, tokenizer=tokenizer, prompts=prompts * 2,
        responses=[c for _, c, _ in pairs] + [r for _, _, r in pairs],
    )  # fmt: skip
    torch.testing.assert_close(torch.cat([chosen, rejected]).detach(), each, rtol=1e-5, atol=1e-4)


def test_unique_sequences_indexes_every_row_to_its_first_appearance():
    prompts, responses, index = unique_sequences([[1], [1], [2], [1]], [[5], [6], [5], [5]])
    assert (prompts, responses, index) == ([[1], [1], [2]], [[5], [6], [5]], [0, 1, 2, 0])


def test_prompt_grouped_order_keeps_each_run_of_one_prompt_together():
    prompts = ["a", "a", "a", "b", "b", "c", "a"]  # runs [0, 1, 2], [3, 4], [5], [6]
    for seed in range(5):
        order = prompt_grouped_order(prompts, generator=torch.Generator().manual_seed(seed))
        assert sorted(order) == list(range(7))
        at = order.index(0)
        assert order[at : at + 3] == [0, 1, 2]  # together, in the order given
        assert order[order.index(3) + 1] == 4


def test_prompt_grouped_order_of_distinct_prompts_is_the_plain_shuffle():
    prompts = [f"p{i}" for i in range(10)]
    order = prompt_grouped_order(prompts, generator=torch.Generator().manual_seed(0))
    assert order == torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
