"""One reward head per criterion: each head learns its criterion from the pairs its
ratings order, the policy's reward is the weighted sum, and margins enter the loss."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
from training.ml.lm.lm_reward import (
    HEADS_FILE,
    ComparisonGroup,
    LMRewardModel,
    group_losses,
    load_lm_reward_model,
    save_lm_reward_model,
)
from training.ml.lm.lm_reward_fit import fit_lm_reward_model

SENTENCES = ["The view was nice.", "The soup was hot.", "The bus was late.", "I went today."]
CRITERIA = (("praise", 2.0), ("length", 1.0))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return load_tiny_lm(tmp_path_factory)


def response(praised: bool, sentences: int, rng: random.Random) -> str:
    words = " ".join(rng.choice(SENTENCES) for _ in range(sentences)).split()
    if praised:
        words.insert(rng.randrange(len(words) + 1), "great")
    return " " + " ".join(words)


def rated_groups(n: int, *, seed: int) -> list[ComparisonGroup]:
    """Judgements of two responses, each rated on praise (6 with "great", else 2) and on
    length (its number of sentences, 1 to 4, plus 2), and the choice of the better by the
    weighted rating; equal ratings give a tie, as training/kinds/text_reward.py does."""
    rng = random.Random(seed)
    prompts = demo_prompts(20)
    weights = dict(CRITERIA)
    groups = []
    for _ in range(n):
        shape = [(rng.random() < 0.5, rng.randint(1, 4)) for _ in range(2)]
        texts = tuple(response(praised, sentences, rng) for praised, sentences in shape)
        ratings = [{"praise": 6 if praised else 2, "length": 2 + s} for praised, s in shape]
        pairs, p_first, heads = [], [], []
        total = [sum(weights[c] * r[c] for c in weights) for r in ratings]
        for head, (a, b) in [(None, total), *((c, [r[c] for r in ratings]) for c in weights)]:
            pairs.append((0, 1))
            p_first.append(0.5 if a == b else float(a > b))
            heads.append(head)
        margins = tuple(
            0.0 if p == 0.5 or h else 1 / 3 for p, h in zip(p_first, heads, strict=True)
        )
        groups.append(
            ComparisonGroup(
                rng.choice(prompts),
                texts,
                tuple(pairs),
                tuple(p_first),
                margins=margins,
                heads=tuple(heads),
            )
        )
    return groups


def test_each_head_ranks_heldout_pairs_of_its_own_criterion(tiny_lm):
    model, tokenizer = tiny_lm
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=0, criteria=CRITERIA)
    fit = fit_lm_reward_model(
        model=reward_model,
        rankings=rated_groups(200, seed=0),
        epochs=4,
        lr=1e-3,
        batch_size=8,
        holdout_fraction=0.25,
        seed=0,
    )
    assert fit.n_heldout == 50
    assert set(fit.heldout_accuracy_by_criterion) == {"praise", "length"}
    for criterion, accuracy in fit.heldout_accuracy_by_criterion.items():
        assert accuracy >= 0.9, (criterion, accuracy)
    assert fit.heldout_accuracy >= 0.9  # the choices, by the weighted sum
    assert set(fit.criterion_metrics()) >= {
        "reward/heldout_accuracy/praise",
        "reward/heldout_accuracy/length",
    }

    # The heads tell the criteria apart on fresh responses, and score() is Σ w̃_c r_c.
    rng = random.Random(7)
    prompts = demo_prompts(4)
    short_praised = [response(True, 1, rng) for _ in prompts]
    long_plain = [response(False, 4, rng) for _ in prompts]
    a = reward_model.score_heads(prompts, short_praised)  # (4, 2)
    b = reward_model.score_heads(prompts, long_plain)
    assert (a[:, 0] > b[:, 0]).all() and (a[:, 1] < b[:, 1]).all()
    torch.testing.assert_close(
        reward_model.score(prompts, short_praised), a @ torch.tensor([2 / 3, 1 / 3])
    )


def test_a_group_loss_sums_each_heads_mean_with_margins(tiny_lm):
    model, tokenizer = tiny_lm
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=1, criteria=CRITERIA)
    with torch.no_grad():  # make the heads differ so that each pair reads its own
        reward_model.head.bias.copy_(torch.tensor([0.3, -0.2]))
        reward_model.head.weight.mul_(10.0)
    prompt, texts = "Tell me.", (" It was great.", " The bus was late today.", " Ok.")
    group = ComparisonGroup(
        prompt,
        texts,
        pairs=((0, 1), (0, 2), (1, 2), (2, 1)),
        p_first=(1.0, 1.0, 1.0, 0.5),
        margins=(1 / 3, 1.0, 0.0, 0.0),
        heads=(None, None, "praise", "length"),
    )
    losses, differences = group_losses(model=reward_model, groups=[group])
    r = reward_model.score_heads([prompt] * 3, list(texts)).double()  # (3, 2)
    total = r @ torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)

    def nll(delta) -> float:  # −log σ(Δ)
        return math.log1p(math.exp(-float(delta)))

    choice = (nll(total[0] - total[1] - 1 / 3) + nll(total[0] - total[2] - 1.0)) / 2
    praise = nll(r[1, 0] - r[2, 0])
    length = (nll(r[2, 1] - r[1, 1]) + nll(r[1, 1] - r[2, 1])) / 2  # a tie: ½ each way
    assert losses.item() == pytest.approx(choice + praise + length, rel=1e-4)
    assert differences[0][0].tolist() == pytest.approx(
        [
            float(d)
            for d in (
                total[0] - total[1],
                total[0] - total[2],
                r[1, 0] - r[2, 0],
                r[2, 1] - r[1, 1],
            )
        ],
        rel=1e-4,
        abs=1e-5,
    )


def test_heads_survive_save_and_load_and_an_old_single_head_checkpoint_loads(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    reward_model = LMRewardModel.from_causal_lm(model, tokenizer, seed=2, criteria=CRITERIA)
    prompts, texts = demo_prompts(2), [" It was great.", " The soup was hot."]
    save_lm_reward_model(reward_model, tmp_path / "heads")
    loaded = load_lm_reward_model(tmp_path / "heads")
    assert loaded.criteria == CRITERIA
    torch.testing.assert_close(
        loaded.score_heads(prompts, texts), reward_model.score_heads(prompts, texts)
    )

    single = LMRewardModel.from_causal_lm(model, tokenizer, seed=3)
    save_lm_reward_model(single, tmp_path / "old")
    (tmp_path / "old" / HEADS_FILE).unlink()  # as saved before criteria
    old = load_lm_reward_model(tmp_path / "old")
    assert old.criteria == (("overall", 1.0),)
    torch.testing.assert_close(old.score(prompts, texts), single.score(prompts, texts))
