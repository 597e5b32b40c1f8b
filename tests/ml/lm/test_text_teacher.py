"""The text teacher: a transparent lexicon score that the synthetic teachers judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml.lm.demo_lm import DEMO_CORPUS
from training.ml.lm.text_teacher import (
    lexicon_reward_fn,
    lexicon_score,
    load_lexicon,
    text_judgeable,
)
from training.ml.teachers import make_teacher


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon()


def test_the_shipped_lexicon_has_about_200_words_weighted_minus_3_to_3(lexicon):
    assert 180 <= len(lexicon) <= 260
    assert all(-3 <= weight <= 3 and weight != 0 for weight in lexicon.values())
    assert lexicon["wonderful"] > lexicon["good"] > 0 > lexicon["bad"] > lexicon["awful"]


def test_lexicon_score_sums_word_weights_ignoring_case_and_punctuation(lexicon):
    text = "Wonderful! The soup was GOOD, but the bread was bad."
    expected = lexicon["wonderful"] + lexicon["good"] + lexicon["bad"]
    assert lexicon_score(text, lexicon) == expected
    assert lexicon_score(text, lexicon, length_normalized=True) == expected / 10
    assert lexicon_score("", lexicon) == 0
    assert lexicon_score("", lexicon, length_normalized=True) == 0


def test_load_lexicon_names_the_bad_line(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("# comment\ngood\t2\nbad -2\n")
    with pytest.raises(ValueError, match=r"lexicon.tsv:3"):
        load_lexicon(path)


def test_synthetic_teachers_judge_text_by_its_lexicon_score(lexicon):
    rng = np.random.default_rng(0)
    warm = text_judgeable(" I think the park is lovely. It made me feel happy.", lexicon=lexicon)
    sour = text_judgeable(" I think the park is awful. It made me feel sad.", lexicon=lexicon)
    plain = text_judgeable(" The park is near the river.", lexicon=lexicon)
    assert warm.true_rewards.shape == (1,) and warm.true_rewards[0] > 0 > sour.true_rewards[0]

    assert make_teacher("rational").judge(warm, sour, rng) == "left"
    assert make_teacher("rational").judge(sour, warm, rng) == "right"
    assert make_teacher("rational").rank([sour, plain, warm], rng) == [2, 1, 0]
    assert make_teacher("equal", equal_threshold=1.0).judge(plain, plain, rng) == "tie"
    assert make_teacher("skip", skip_threshold=1.0).judge(sour, plain, rng) == "skip"
    flips = [make_teacher("mistake", epsilon=0.3).judge(warm, sour, rng) for _ in range(400)]
    assert 0.2 < flips.count("right") / 400 < 0.4
    noisy = [make_teacher("rational", beta=0.5).judge(warm, sour, rng) for _ in range(200)]
    assert noisy.count("left") > noisy.count("right") > 0
    # default lexicon: the shipped one
    assert text_judgeable(warm.text).true_rewards[0] == warm.true_rewards[0]


def test_lexicon_reward_fn_returns_one_score_per_response(lexicon):
    reward_fn = lexicon_reward_fn(lexicon)
    rewards = reward_fn(["q", "q"], [" great", " awful awful"])
    assert rewards.dtype == torch.float32
    assert rewards.tolist() == [lexicon["great"], 2 * lexicon["awful"]]


def test_the_demo_corpus_gives_the_teacher_both_warm_and_sour_answers(lexicon):
    answers = [
        line.removeprefix("Answer:")
        for line in DEMO_CORPUS.read_text().splitlines()
        if line.startswith("Answer:")
    ]
    scores = np.array([lexicon_score(a, lexicon) for a in answers])
    assert (scores > 0).mean() > 0.3
    assert (scores < 0).mean() > 0.3
