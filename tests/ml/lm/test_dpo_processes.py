"""DPO over two torchrun processes (gloo, CPU) takes the steps one process takes on the
same global batches: the same per-step losses, metrics and trained weights."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from tests.ml.lm.test_dpo import sentiment_pairs
from training.ml.lm import distributed
from training.ml.lm.dpo import train_dpo
from training.ml.lm.dpo_processes import train_dpo_in_processes


def _ranked_pairs():
    """11 pairs, some neighbours sharing a prompt (as a ranking's pairs come)."""
    prompts = demo_prompts(7)
    return sentiment_pairs(prompts[:4] * 2, seed=1) + sentiment_pairs(prompts[4:], seed=2)


def test_two_processes_give_the_one_process_losses_metrics_and_weights(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    pairs = sorted(_ranked_pairs(), key=lambda pair: pair[0])
    weights = [0.6 + 0.04 * k for k in range(len(pairs))]  # per-pair soft labels
    # batches of 5: shares of 3 and 2, and a last batch of 1 that one process sits out
    options = {
        "pairs": pairs,
        "weights": weights,
        "beta": 0.1,
        "epochs": 2,
        "lr": 1e-3,
        "batch_size": 5,
        "dtype": "float32",
        "seed": 3,
    }
    one, one_losses = copy.deepcopy(policy), []
    one_metrics = train_dpo(
        policy=one,
        tokenizer=tokenizer,
        on_step=lambda step, loss: one_losses.append((step, loss)),
        **options,
    )
    two, two_losses, fractions = copy.deepcopy(policy), [], []
    two_metrics = train_dpo_in_processes(
        processes=2,
        policy=two,
        tokenizer=tokenizer,
        progress=fractions.append,
        on_step=lambda step, loss: two_losses.append((step, loss)),
        **options,
    )

    assert [step for step, _ in two_losses] == list(range(1, 7)) == [s for s, _ in one_losses]
    for (_, a), (_, b) in zip(one_losses, two_losses, strict=True):
        assert b == pytest.approx(a, abs=1e-5)
    assert one_losses[-1][1] < one_losses[0][1]  # it trained
    assert two_metrics.keys() == one_metrics.keys()
    for name, value in one_metrics.items():
        assert two_metrics[name] == pytest.approx(value, rel=1e-5, abs=1e-5), name  # logps ~ 20
    assert fractions[-1] == pytest.approx(1.0)
    # Every weight agrees to 1e-5 but those whose gradient is zero up to rounding (the
    # attention's key bias, zero in exact arithmetic, and a few embedding entries): there
    # AdamW's step g / (√v + ε) turns rounding noise into a step of up to lr.
    one_w = torch.cat([p.detach().reshape(-1) for p in one.parameters()])
    two_w = torch.cat([p.detach().reshape(-1) for p in two.parameters()])
    start_w = torch.cat([p.detach().reshape(-1) for p in policy.parameters()])
    apart = (one_w - two_w).abs()
    assert (apart > 1e-5).float().mean() < 0.005
    assert apart.max() <= 2 * options["lr"] * len(one_losses)
    moved = (one_w - start_w).abs().max().item()
    assert moved > 1e-4  # the comparison is of trained weights, not of the start


def test_a_failing_process_raises_its_error_with_torchrun_stderr(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    with pytest.raises(RuntimeError) as raised:
        train_dpo_in_processes(
            processes=2,
            policy=policy,
            tokenizer=tokenizer,
            pairs=[("a prompt", " good", " bad")],
            weights=[0.9, 0.8],  # two weights for one pair: every process fails
            seed=0,
        )
    first, *rest = str(raised.value).splitlines()
    assert first.startswith("DPO over 2 processes failed")
    assert "ValueError: 2 weights for 1 pairs." in first
    assert "stderr" in rest[0]


def test_alone_the_share_is_the_batch_and_sums_are_the_values():
    assert distributed.rank_and_world() == (0, 1)
    assert distributed.share([4, 2, 7]) == [4, 2, 7]
    value = torch.tensor([1.5, 2.0])
    assert distributed.summed(value) is value
    assert distributed.gathered([0, 1], value, 2) is value


def test_a_lora_policy_over_two_processes_trains_its_adapter_as_one_process_does(
    tmp_path_factory,
):
    from training.ml.lm import lora

    base, tokenizer = load_tiny_lm(tmp_path_factory)
    spec = lora.LoraSpec(r=4, target_modules=("c_attn",))
    one = lora.add_adapter(copy.deepcopy(base), spec, seed=0)
    two = lora.add_adapter(copy.deepcopy(base), spec, seed=0)
    options = {"pairs": _ranked_pairs(), "epochs": 1, "lr": 1e-2, "batch_size": 4, "seed": 0}
    one_metrics = train_dpo(
        policy=one,
        reference=lora.reference_of(one),
        **options,
        tokenizer=tokenizer,
        dtype="float32",
    )
    two_metrics = train_dpo_in_processes(
        processes=2,
        policy=two,
        reference=lora.reference_of(two),
        tokenizer=tokenizer,
        dtype="float32",
        **options,
    )

    assert two_metrics["loss"] == pytest.approx(one_metrics["loss"], abs=1e-5)
    trained = {n: p for n, p in two.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    for name, p in one.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(trained[name], p, atol=1e-5, rtol=0, msg=name)
    assert one_metrics["rewards/margins"] > 0
