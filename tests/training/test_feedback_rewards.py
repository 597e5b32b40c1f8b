"""Reward fits that use the rich feedback in the database: a text project's reward model
trains on strength margins and on one head per criterion from the ratings (and its
policy-gradient round trains on their weighted sum); a trajectory project's ensemble
applies the margins; both_bad judgements are counted."""

from __future__ import annotations

import pytest

from labeling import services
from labeling.config import project_config
from labeling.models import Item, Judgement
from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from training import artifacts
from training import services as training_services
from training.kinds import text_reward
from training.kinds.config import strength_margin
from training.kinds.registry import kind_for
from training.kinds.text import KIND as TEXT
from training.ml.lm import lm
from training.ml.lm.lm_reward import load_lm_reward_model
from training.models import RewardModel
from training.runner import run_round_here
from training.steps import StepContext

CRITERIA = [{"name": "praise", "weight": 2.0}, {"name": "length", "weight": 1.0}]
FORM = {"strength": "optional", "ratings": "optional", "both_bad": True}
# (left text, right text, strength): the left one always has "great" and is shorter
JUDGED = [
    (" It was great.", " The bus was late. The path was long.", "strong"),
    (" A great view.", " The soup was hot. It was late.", "slight"),
    (" Great soup.", " I went there today and it was long.", "clear"),
    (" So great.", " The view was nice and the bus was late.", ""),
    (" Great bus.", " The path was long and I went there.", "strong"),
    (" Great day.", " It made me feel calm and it was late.", "slight"),
]


def _context(project, config) -> StepContext:
    return StepContext(step=None, project=project, config=config, seed=0, progress=lambda f: None)


def _judge_text_pairs(project, annotator):
    """The JUDGED pairs as judgements with strength and ratings (left rated 6 on praise,
    2 on length; right the other way round), one tie and one both_bad."""
    for n, (left, right, strength) in enumerate(JUDGED):
        items = [
            Item.objects.create(project=project, prompt=f"Prompt {n}.", text=text)
            for text in (left, right)
        ]
        comparison = services.create_comparison(project=project, items=items)
        a, b = (str(item.pk) for item in items)
        Judgement.objects.create(
            project=project,
            comparison=comparison,
            annotator=annotator,
            choice="left",
            ranking=[item.pk for item in items],
            shown_order=[item.pk for item in items],
            strength=strength,
            ratings={a: {"praise": 6, "length": 2}, b: {"praise": 2, "length": 6}},
        )
    for choice in ("tie", "both_bad"):
        items = [
            Item.objects.create(project=project, prompt="Prompt.", text=text)
            for text in (" Fine.", " Okay.")
        ]
        comparison = services.create_comparison(project=project, items=items)
        Judgement.objects.create(
            project=project,
            comparison=comparison,
            annotator=annotator,
            choice=choice,
            ranking=None,
            shown_order=[item.pk for item in items],
            strength="",
            ratings={
                str(items[0].pk): {"praise": 4, "length": 4},
                str(items[1].pk): {"praise": 4, "length": 3},
            },
        )


@pytest.mark.django_db
def test_a_text_reward_fit_trains_on_strength_margins_and_per_criterion_ratings(
    tmp_path_factory, media_root, make_project, make_user
):
    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(2),
        "algorithm": "reinforce",
        "k": 2,
        "max_new_tokens": 6,
        "comparisons_per_round": 2,
        "feedback": FORM,
        "criteria": CRITERIA,
        "strength_margins": {"strong": 2.0},  # slight and clear keep their defaults
    }
    project = make_project(kind="text", config=config)
    _judge_text_pairs(project, make_user())
    typed = project_config("text", project.config)

    judged = text_reward.judged_groups(project, lm.load_tokenizer(config["model_dir"]), typed)
    # six choices, a tie and a both_bad; each choice's pair first, with its strength's
    # margin, then one rating pair per criterion, margin 0
    assert len(judged) == 8
    first = judged[0][0]
    assert first.heads == (None, "praise", "length")
    assert first.p_first == (1.0, 1.0, 1.0) and first.pairs == ((0, 1), (0, 1), (1, 0))
    assert [g.margins[0] for g, _ in judged[:6]] == pytest.approx(
        [2.0, 1 / 3, 2 / 3, 0.0, 2.0, 1 / 3]
    )
    tie = judged[6][0]  # the tie: p = ½, margin 0; ratings 4 = 4 a tie, 4 > 3 a win
    assert tie.p_first == (0.5, 0.5, 1.0) and tie.margins == (0.0, 0.0, 0.0)
    both_bad, preferences = judged[7]  # no preference, but its ratings still train the heads
    assert preferences == [] and both_bad.heads == ("praise", "length")

    round_run = run_round_here(
        training_services.start_round(project=project, trigger="test", enqueue=False)
    )
    assert round_run.status == "succeeded", round_run.error
    fit = round_run.steps.get(kind="fit_reward_model").metrics
    assert fit["reward/n_judgements"] == 8 and fit["reward/n_rating_pairs"] == 16
    assert fit["feedback/both_bad"] == 1
    assert {"reward/train_accuracy/praise", "reward/train_accuracy/length"} <= set(fit)
    row = RewardModel.objects.get(project=project)
    with artifacts.local_directory(row.checkpoint) as path:
        assert load_lm_reward_model(path).criteria == (("praise", 2.0), ("length", 1.0))
    # the policy gradient trained on the weighted sum of the two heads
    assert "kl" in round_run.steps.get(kind="improve_policy").metrics

    # The margins are in the loss: the same fit without them ends elsewhere.
    zeros = {"slight": 0, "clear": 0, "strong": 0}
    plain = project_config("text", {**project.config, "strength_margins": zeros})
    with_margins = TEXT.fit_reward_model(_context(project, typed)).metrics
    without = TEXT.fit_reward_model(_context(project, plain)).metrics
    assert with_margins["reward/train_loss"] != pytest.approx(without["reward/train_loss"])


PENDULUM = {
    "env_id": "Pendulum-v1",
    "segment_length": 5,
    "algorithm": "reinforce",
    "env_steps_per_round": 200,
    "comparisons_per_round": 6,
    "selection": "random",
    "ensemble_size": 2,
    "render_clips": False,
    "seed": 1,
    "eval_episodes": 1,
    "feedback": {"strength": "optional", "both_bad": True},
}
LAKE = {  # a tabular trajectory project: its reward is a table fitted the same way
    "env_id": "FrozenLakeNotSlippery-v1",
    "segment_length": 6,
    "algorithm": "value_iteration",
    "comparisons_per_round": 6,
    "selection": "random",
    "render_clips": False,
    "gamma": 0.9,
    "seed": 3,
    "feedback": {"strength": "optional", "both_bad": True},
}


@pytest.mark.django_db
@pytest.mark.parametrize("config", [PENDULUM, LAKE], ids=["ensemble", "tabular"])
def test_the_trajectory_reward_fit_applies_strength_margins(
    media_root, make_project, make_user, config
):
    project = make_project(kind="trajectory", config=config)
    first = run_round_here(
        training_services.start_round(project=project, trigger="test", enqueue=False)
    )
    assert first.status == "succeeded", first.error
    annotator = make_user()
    comparisons = list(project.comparisons.order_by("pk"))
    assert len(comparisons) == 6
    for n, comparison in enumerate(comparisons):
        shown = list(comparison.items.order_by("pk").values_list("pk", flat=True))
        Judgement.objects.create(
            project=project,
            comparison=comparison,
            annotator=annotator,
            choice="both_bad" if n == 5 else "left",
            ranking=None if n == 5 else shown,
            shown_order=shown,
            strength="" if n == 5 else "strong",
        )
    kind = kind_for(project)

    def fit(**overrides) -> dict:
        typed = project_config("trajectory", {**project.config, **overrides})
        return kind.fit_reward_model(_context(project, typed)).metrics

    strong = fit()  # "strong" is a margin of 1 by default
    zero = fit(strength_margins={"strong": 0.0})
    assert strong["reward/n_pairs"] == 5 and strong["feedback/both_bad"] == 1
    assert strong["reward/train_loss"] != pytest.approx(zero["reward/train_loss"])

    # A margin of 0 is the plain model: the same as judgements without a strength.
    Judgement.objects.filter(project=project).update(strength="")
    assert fit()["reward/train_loss"] == pytest.approx(zero["reward/train_loss"], rel=1e-6)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["text", "trajectory"])
@pytest.mark.parametrize(
    ("margins", "key"),
    [
        ({"strong": -1}, "strength_margins.strong"),
        ({"clear": "big"}, "strength_margins.clear"),
        ({"slight": True}, "strength_margins.slight"),
        ({"huge": 1.0}, "strength_margins.huge"),
        ([1, 2, 3], "strength_margins"),
    ],
)
def test_a_bad_strength_margin_is_a_400_naming_the_key(
    make_user, api_client_for, kind, margins, key
):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "m", "name": "M", "kind": kind, "config": {"strength_margins": margins}},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert key in response.json()["config"], response.json()


@pytest.mark.django_db
def test_strength_margins_default_to_llama_2s_and_may_be_overridden(make_project):
    project = make_project(kind="text", config={"strength_margins": {"strong": 3.0}})
    config = project_config("text", project.config)
    assert [strength_margin(config, s, 1.0) for s in ("slight", "clear", "strong", "")] == (
        pytest.approx([1 / 3, 2 / 3, 3.0, 0.0])
    )
    assert strength_margin(config, "strong", 0.5) == 0.0  # a tie has no margin
