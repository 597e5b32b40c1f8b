"""KTO: the loss is the paper's L_KTO = E[λ_y − v(x, y)] with a detached reference point
z_0 ≥ 0, and training on thumbs raises the log-probability of desirable completions and
lowers undesirable ones."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.ml.lm.lm_fixtures import load_tiny_lm
from training.ml.lm import lora
from training.ml.lm.kto import kl_estimate, kto_loss, mismatched, train_kto
from training.ml.lm.lm import sequence_logprobs

TOPICS = ["the book", "the game", "the zoo", "cooking", "the salad", "the market"]
TOPICS += ["the cafe", "the park", "the lake", "the soup", "the omelette", "the bookshop"]


def thumbs(topics):
    """(prompt, completion, desirable) about each topic in turn, "I love ..." desirable and
    "I did not like ..." not, every other one. Each completion names its prompt's topic: KTO's
    reference point z_0, from prompts paired with other prompts' completions, discounts what
    the policy gains on any prompt, so what it learns is what fits the prompt."""
    examples = []
    for i, topic in enumerate(topics):
        prompt = f"Question: How do you feel about {topic}?\nAnswer:"
        good = i % 2 == 0
        completion = f" I love {topic}." if good else f" I did not like {topic}."
        examples.append((prompt, completion, good))
    return examples


def test_kto_loss_equals_the_hand_computed_value():
    # r = log π_θ − log π_ref = [1.0, −1.0, 0.5]; z_0 = 0.2; β = 0.5; λ_D = 1, λ_U = 1.5
    #   desirable:   1 − σ(0.5 · (1.0 − 0.2))         = 1 − σ(0.40)        = 0.401312
    #   undesirable: 1.5 − 1.5 σ(0.5 · (0.2 − (−1.0))) = 1.5 − 1.5 σ(0.60)  = 0.531516
    #   desirable:   1 − σ(0.5 · (0.5 − 0.2))         = 1 − σ(0.15)        = 0.462570
    # L_KTO = their mean = 0.465133
    losses, rewards, z0 = kto_loss(
        torch.tensor([-4.0, -6.0, -3.0]),
        torch.tensor([-5.0, -5.0, -3.5]),
        torch.tensor([True, False, True]),
        torch.tensor(0.2),
        beta=0.5,
        desirable_weight=1.0,
        undesirable_weight=1.5,
    )
    torch.testing.assert_close(
        losses, torch.tensor([0.401312, 0.531516, 0.462570]), atol=1e-6, rtol=0
    )
    assert losses.mean().item() == pytest.approx(0.465133, abs=1e-6)
    torch.testing.assert_close(rewards, torch.tensor([0.5, -0.5, 0.25]))  # β r, implied rewards
    assert z0.item() == pytest.approx(0.2)


def test_the_kl_estimate_is_clamped_at_zero_and_carries_no_gradient():
    policy_logps = torch.tensor([-4.0, -6.0, -3.0], requires_grad=True)
    reference_logps = torch.tensor([-5.0, -5.0, -3.5])
    desirable = torch.tensor([True, False, True])
    # mismatched pairs whose policy is *less* likely than the reference: a negative estimate
    policy_kl = torch.tensor([-7.0, -8.0], requires_grad=True)
    raw = kl_estimate(policy_kl, torch.tensor([-6.0, -7.5]))
    assert raw.item() == pytest.approx(-0.75)

    losses, _, z0 = kto_loss(policy_logps, reference_logps, desirable, raw, beta=0.5)
    assert z0.item() == 0.0  # max(0, −0.75)
    # with z_0 = 0: 1 − σ(0.5), 1 − σ(0.5), 1 − σ(0.25)
    by_hand = [1 - 1 / (1 + math.exp(-x)) for x in (0.5, 0.5, 0.25)]
    torch.testing.assert_close(losses, torch.tensor(by_hand))
    losses.mean().backward()
    assert policy_kl.grad is None  # z_0 is detached: nothing flows into the mismatched pairs
    assert policy_logps.grad is not None and (policy_logps.grad != 0).all()

    # a positive estimate is used as it is, and still carries no gradient
    positive = torch.tensor(0.3, requires_grad=True)
    _, _, z0 = kto_loss(policy_logps.detach(), reference_logps, desirable, positive, beta=0.5)
    assert z0.item() == pytest.approx(0.3) and not z0.requires_grad


def test_each_prompt_is_paired_with_its_neighbours_completion_for_the_kl_estimate():
    assert mismatched([4, 7, 1]) == [1, 4, 7]  # (x_4, y_1), (x_7, y_4), (x_1, y_7)
    assert mismatched([3]) == [3]


def test_train_kto_raises_desirable_and_lowers_undesirable_log_probabilities(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    examples = thumbs(TOPICS)
    prompts = [x for x, _, _ in examples]
    completions = [y for _, y, _ in examples]
    good = torch.tensor([d for _, _, d in examples])

    def logps(model):
        return sequence_logprobs(
            model=model, tokenizer=tokenizer, prompts=prompts, responses=completions
        )

    # Before: π_θ = π_ref, so r = 0, z_0 = 0 and every example's loss is λ − λ σ(0) = ½.
    untrained = train_kto(
        policy=copy.deepcopy(policy), tokenizer=tokenizer, examples=examples, lr=0.0, seed=0
    )
    assert untrained["kto/loss"] == pytest.approx(0.5, abs=1e-6)
    assert untrained["kto/kl"] == 0.0
    assert untrained["rewards/desirable"] == pytest.approx(0.0, abs=1e-6)

    before = logps(policy)
    metrics = train_kto(
        policy=policy, tokenizer=tokenizer, examples=examples, epochs=2, lr=1e-3, seed=0
    )
    after = logps(policy)
    change = after - before
    assert change[good].mean() > 1.0 and change[~good].mean() < -1.0
    assert (change[good] > 0).all() and (change[~good] < 0).all()
    assert metrics["rewards/desirable"] > 0 > metrics["rewards/undesirable"]
    assert metrics["kto/loss"] < 0.5 - 0.05
    assert metrics["count/desirable"] == metrics["count/undesirable"] == 6
    assert metrics["kto/weight_ratio"] == 1.0
    assert set(metrics) >= {"kto/kl", "logps/desirable", "logps/undesirable", "train/loss"}


def test_train_kto_scores_the_reference_once_before_training(tmp_path_factory):
    base, tokenizer = load_tiny_lm(tmp_path_factory)
    policy = lora.add_adapter(base, lora.LoraSpec(r=4), seed=0)
    reference = lora.reference_of(policy)  # the base, adapters switched off
    examples = thumbs(TOPICS[:6])
    calls = []
    base.register_forward_hook(
        lambda m, args, kw, out: calls.append(torch.is_grad_enabled()), with_kwargs=True
    )
    progress = []
    metrics = train_kto(
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        examples=examples,
        epochs=2,
        batch_size=4,
        lr=1e-3,
        seed=0,
        progress=progress.append,
    )
    # π_ref: the examples and the mismatched pairs of both epochs, in passes of 8 rows (2);
    # then per step (2 epochs × 2 batches) the mismatched pairs without gradient and the
    # batch with it; then the closing pass (2 passes of ≤ 8 rows, of 6 pairs and 6 examples).
    assert calls == [False] * 3 + [False, True] * 4 + [False, False]
    assert progress == [0.25, 0.5, 0.75, 1.0]
    assert metrics["rewards/desirable"] > 0 > metrics["rewards/undesirable"]
