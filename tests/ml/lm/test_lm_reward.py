"""The text reward model r_θ(x, y): InstructGPT's ranking loss, and it learns a rule."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from training.ml.bradley_terry import bradley_terry_loss
from training.ml.lm.lm_reward import (
    LMRewardModel,
    comparison_groups,
    group_losses,
    load_lm_reward_model,
    save_lm_reward_model,
)
from training.ml.lm.lm_reward_fit import fit_lm_reward_model

SENTENCES = [
    "The view was nice.",
    "It made me feel calm.",
    "The soup was hot.",
    "I went there today.",
    "The bus was late.",
    "The path was long.",
]


def response_with(n_great: int, rng: random.Random) -> str:
    """Three plain sentences with the word "great" inserted n_great times."""
    words = " ".join(rng.choice(SENTENCES) for _ in range(3)).split()
    for _ in range(n_great):
        words.insert(rng.randrange(len(words) + 1), "great")
    return " " + " ".join(words)


def counting_rankings(n: int, *, seed: int):
    """Rankings of 3 responses: more "great" is better."""
    rng = random.Random(seed)
    prompts = demo_prompts(40)
    rankings = []
    for _ in range(n):
        counts = sorted(rng.sample(range(4), 3), reverse=True)
        rankings.append((rng.choice(prompts), [response_with(c, rng) for c in counts]))
    return rankings


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return load_tiny_lm(tmp_path_factory)


def test_a_ranking_of_k_is_one_group_of_all_k_choose_2_pairs():
    rankings = [("x", ["a", "b", "c", "d"]), ("x", "a", "b", 0.5)]
    ranking, tie = comparison_groups(rankings)
    assert ranking.pairs == ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    assert ranking.p_first == (1.0,) * 6
    assert tie.pairs == ((0, 1),) and tie.p_first == (0.5,)


def test_the_loss_averages_pairs_within_a_ranking_then_rankings_in_a_batch():
    class FixedRewards:
        """Stands in for r_θ: a fixed reward per response text."""

        table = {"a": 2.0, "b": 0.5, "c": -1.0, "d": 1.0, "e": 0.0}

        def rewards(self, prompts, responses, *, dtype=torch.float32):
            return torch.tensor([self.table[r] for r in responses])

    groups = comparison_groups([("x", ["a", "b", "c"]), ("y", "d", "e", 0.0)])
    losses, _ = group_losses(model=FixedRewards(), groups=groups)
    r = FixedRewards.table
    # InstructGPT eq. 1: −1/C(3,2) Σ log σ(r_w − r_l) over the ranking's 3 pairs
    ranking = (
        -sum(
            math.log(1 / (1 + math.exp(-(r[better] - r[worse]))))
            for better, worse in [("a", "b"), ("a", "c"), ("b", "c")]
        )
        / 3
    )
    pair = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    assert losses[0].item() == pytest.approx(ranking, rel=1e-6)
    assert losses[1].item() == pytest.approx(pair.item(), rel=1e-6)


def test_comparison_groups_reject_a_malformed_item():
    with pytest.raises(ValueError, match="responses best first"):
        comparison_groups([("x", "a", "b")])
    with pytest.raises(ValueError, match="K >= 2"):
        comparison_groups([("x", ["a"])])


def test_reward_model_ranks_heldout_pairs_of_a_counting_rule(tiny_lm):
    model, tokenizer = tiny_lm
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=0)
    metrics = fit_lm_reward_model(
        model=reward_model,
        rankings=counting_rankings(160, seed=0),
        epochs=4,
        lr=1e-3,
        batch_size=8,
        holdout_fraction=0.25,
        seed=0,
    )
    assert metrics.n_heldout == 40 and metrics.n_heldout_pairs == 120
    assert metrics.heldout_accuracy >= 0.9
    assert metrics.heldout_loss < math.log(2)
    assert set(metrics.as_metrics()) >= {"charts/heldout_accuracy", "losses/train_loss"}

    # Fresh responses: more "great" scores higher.
    rng = random.Random(7)
    prompts = demo_prompts(5)
    few = reward_model.score(prompts, [response_with(0, rng) for _ in prompts])
    many = reward_model.score(prompts=prompts, responses=[response_with(3, rng) for _ in prompts])
    assert few.shape == (5,)
    assert (many > few).all()


def test_ties_and_weighted_pairs_fit_and_are_left_out_of_accuracy(tiny_lm):
    model, tokenizer = tiny_lm
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=0)
    prompt = demo_prompts(1)[0]
    pairs = [(prompt, " It was great.", " It was awful.", 1.0)] * 4
    pairs += [(prompt, " It was fine.", " It was okay.", 0.5)] * 4
    metrics = fit_lm_reward_model(
        model=reward_model, rankings=pairs, epochs=2, lr=1e-3, holdout_fraction=0.0, seed=0
    )
    assert metrics.n_heldout == 0 and metrics.heldout_accuracy is None
    assert metrics.train_accuracy == 1.0  # only the 4 decided pairs count


def test_score_does_not_depend_on_batching_and_survives_save_and_load(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=3)
    prompts = demo_prompts(3)
    responses = [" Short.", " A much longer answer that needs padding here.", " Mid one."]
    together = reward_model.score(prompts, responses)
    apart = torch.cat(
        [reward_model.score([p], [r]) for p, r in zip(prompts, responses, strict=True)]
    )
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-5)

    save_lm_reward_model(reward_model, tmp_path / "rm")
    loaded = load_lm_reward_model(tmp_path / "rm")
    torch.testing.assert_close(loaded.score(prompts, responses), together, rtol=1e-5, atol=1e-5)
