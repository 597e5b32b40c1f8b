"""DPO: the loss is the paper's eq. 7 (and cDPO's), and training on pairs moves the
policy's implicit reward towards the chosen responses."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from training.ml.lm.dpo import dpo_loss, train_dpo
from training.ml.lm.lm import frozen_copy, sequence_logprobs

POSITIVE = ["lovely", "great", "wonderful", "good", "pleasant"]
NEGATIVE = ["awful", "terrible", "bad", "boring", "dull"]
TOPICS = ["the cafe", "the park", "the book", "the soup", "the game", "the lake", "running"]


def sentiment_pairs(prompts, *, seed):
    """(prompt, chosen, rejected): the same sentence with a warm or a sour adjective."""
    rng = random.Random(seed)
    pairs = []
    for prompt in prompts:
        topic = rng.choice(TOPICS)
        chosen = f" I think {topic} is {rng.choice(POSITIVE)}."
        rejected = f" I think {topic} is {rng.choice(NEGATIVE)}."
        pairs.append((prompt, chosen, rejected))
    return pairs


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_dpo_loss_equals_the_hand_computed_eq_7():
    beta = 0.1
    # log π_θ(y_w), log π_θ(y_l), log π_ref(y_w), log π_ref(y_l) for two pairs
    pc, pr, rc, rr = [-10.0, -4.0], [-12.0, -3.0], [-11.0, -5.0], [-11.5, -2.5]
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        torch.tensor(pc), torch.tensor(pr), torch.tensor(rc), torch.tensor(rr), beta=beta
    )
    for i in range(2):
        h = (pc[i] - rc[i]) - (pr[i] - rr[i])
        assert losses[i].item() == pytest.approx(-math.log(sigmoid(beta * h)), rel=1e-6)
        assert chosen_rewards[i].item() == pytest.approx(beta * (pc[i] - rc[i]), rel=1e-6)
        assert rejected_rewards[i].item() == pytest.approx(beta * (pr[i] - rr[i]), rel=1e-6)
    # first pair: h = (−10 + 11) − (−12 + 11.5) = 1.5, loss = log(1 + e^{−0.15})
    assert losses[0].item() == pytest.approx(math.log(1 + math.exp(-0.15)), rel=1e-6)


def test_conservative_dpo_loss_equals_the_hand_computed_mixture():
    beta, epsilon = 0.5, 0.2
    losses, _, _ = dpo_loss(
        torch.tensor([-10.0]),
        torch.tensor([-12.0]),
        torch.tensor([-11.0]),
        torch.tensor([-11.5]),
        beta=beta,
        label_smoothing=epsilon,
    )
    h = 1.5
    by_hand = -(1 - epsilon) * math.log(sigmoid(beta * h)) - epsilon * math.log(sigmoid(-beta * h))
    assert losses.item() == pytest.approx(by_hand, rel=1e-6)


def test_dpo_loss_is_log_2_when_the_policy_is_the_reference():
    logps = torch.tensor([-3.0, -7.0])
    losses, chosen, rejected = dpo_loss(logps, logps + 1, logps, logps + 1, beta=0.1)
    torch.testing.assert_close(losses, torch.full((2,), math.log(2)))
    assert (chosen == 0).all() and (rejected == 0).all()


def test_dpo_loss_rejects_label_smoothing_of_one_half_or_more():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(x, x, x, x, beta=0.1, label_smoothing=0.5)


def test_train_dpo_raises_the_chosen_over_rejected_margin_and_accuracy(tmp_path_factory):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    reference = frozen_copy(policy)
    prompts = demo_prompts(40)
    train_pairs = sentiment_pairs(prompts[:30], seed=0)
    heldout_pairs = sentiment_pairs(prompts[30:], seed=1)

    # Before: π_θ = π_ref, so every implicit reward is 0 and the loss is log 2.
    before = train_dpo(
        policy=copy.deepcopy(policy), tokenizer=tokenizer, pairs=train_pairs, lr=0.0, seed=0
    )
    assert before["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert before["rewards/accuracies"] == 0.0
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-5)

    after = train_dpo(
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        pairs=train_pairs,
        beta=0.1,
        label_smoothing=0.0,
        epochs=2,
        lr=1e-3,
        batch_size=8,
        seed=0,
    )
    assert set(after) >= {
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "logps/chosen",
        "logps/rejected",
        "loss",
    }
    assert after["rewards/margins"] > 0.3
    assert after["rewards/accuracies"] >= 0.9
    assert after["loss"] < math.log(2) - 0.1

    # It learned the preference, not the pairs: held-out pairs have a positive margin too.
    def implicit_rewards(model, index):
        return sequence_logprobs(
            model=model,
            tokenizer=tokenizer,
            prompts=[p for p, *_ in heldout_pairs],
            responses=[pair[index] for pair in heldout_pairs],
        )

    margins = (implicit_rewards(policy, 1) - implicit_rewards(reference, 1)) - (
        implicit_rewards(policy, 2) - implicit_rewards(reference, 2)
    )
    assert (margins > 0).float().mean() >= 0.9


def test_train_dpo_scores_the_reference_once_and_each_batch_in_one_forward_pass(
    tmp_path_factory,
):
    policy, tokenizer = load_tiny_lm(tmp_path_factory)
    reference = frozen_copy(policy)
    pairs = sentiment_pairs(demo_prompts(10), seed=0)
    reference_rows, policy_rows = [], []
    reference.register_forward_hook(
        lambda m, args, kw, out: reference_rows.append(len(kw["input_ids"])), with_kwargs=True
    )
    policy.register_forward_hook(
        lambda m, args, kw, out: policy_rows.append(len(kw["input_ids"])), with_kwargs=True
    )

    train_dpo(
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        pairs=pairs,
        epochs=3,
        batch_size=4,
        lr=1e-4,
        seed=0,
    )
    # 10 pairs in batches of 4: 3 forward passes of 8, 8 and 4 rows (chosen + rejected).
    assert reference_rows == [8, 8, 4]
    assert policy_rows == [8, 8, 4] * 3 + [8, 8, 4]  # 3 epochs, then the final metrics
