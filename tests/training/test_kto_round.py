"""KTO on a conversational text project with ratings: its examples are the rendered
conversations' final turns with the ratings' verdicts, and a real Celery worker runs a KTO
round on real PostgreSQL that needs no reward model and samples conversations next."""

import pytest

from labeling import conversations, services
from labeling.config import project_config
from labeling.imports import import_lines
from labeling.models import Comparison, Item
from tests.ml.lm.lm_fixtures import tiny_lm_dir
from tests.training.rounds import round_via_api
from training.kinds.text_kto import kto_examples
from training.ml.lm import chat, lm
from training.models import Policy, RewardModel

TOPICS = ("the cafe", "the book", "the soup")
PROMPTS = [
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "How was the park?"},
        {"role": "assistant", "content": "It was lovely."},
        {"role": "user", "content": f"And {topic}?"},
    ]
    for topic in TOPICS
]
GOOD, BAD = "It was lovely.", "It was awful."


def _config(tmp_path_factory, **overrides) -> dict:
    return {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "feedback": {"ratings": "required"},
        "algorithm": "kto",
        "eval_prompts": PROMPTS[:1],
        "k": 2,
        "max_new_tokens": 10,
        "comparisons_per_round": 3,
        "seed": 1,
        **overrides,
    }


def _import_and_rate(project, annotator, importer) -> None:
    """One imported pair of conversation candidates per prompt, each judged through the
    labeling services: the "lovely" candidate chosen and rated 6, the "awful" one rated 2."""
    lines = [
        {
            "prompt": prompt,
            "responses": [
                [{"role": "assistant", "content": GOOD}],
                [{"role": "assistant", "content": BAD}],
            ],
        }
        for prompt in PROMPTS
    ]
    import_lines(project=project, lines=list(enumerate(lines, 1)), importer=importer)
    while lease := services.assign_next_comparison(annotator=annotator, project=project):
        shown = list(lease.display_order)
        texts = dict(Item.objects.filter(pk__in=shown).values_list("pk", "text"))
        good = next(pk for pk in shown if texts[pk] == GOOD)
        services.record_judgement(
            annotator=annotator,
            comparison=lease.comparison,
            choice="left" if shown[0] == good else "right",
            shown_order=shown,
            ratings={str(pk): {"overall": 6 if pk == good else 2} for pk in shown},
        )


@pytest.mark.django_db
def test_kto_examples_are_each_rated_final_turn_after_its_rendered_conversation(
    tmp_path_factory, make_user, make_project
):
    annotator = make_user()
    project = make_project(
        kind="text", config=_config(tmp_path_factory), members=[annotator], overlap=1
    )
    _import_and_rate(project, annotator, importer=make_user(staff=True))
    tokenizer = lm.load_tokenizer(project.config["model_dir"])

    examples, counts = kto_examples(project, project_config("text", project.config), tokenizer)

    contexts = [chat.render_context(tokenizer, prompt) for prompt in PROMPTS]
    assert sorted(examples) == sorted(
        [(context, text, text == GOOD) for context in contexts for text in (GOOD, BAD)]
    )
    assert counts == {"kto/from_rating": 6, "kto/from_choice": 0, "kto/from_edit": 0}
    # with desirable_at 6.5 a rating of 6 is neither desirable nor undesirable: only the
    # completions rated 2 (≤ undesirable_at, 3) are left
    high = project_config("text", {**project.config, "kto": {"desirable_at": 6.5}})
    examples, _ = kto_examples(project, high, tokenizer)
    assert sorted(d for _, _, d in examples) == [False] * 3


@pytest.mark.worker
def test_a_kto_round_on_rated_conversations_trains_without_a_reward_model(
    celery_worker_process, tmp_path_factory, make_user, make_project, api_client_for
):
    annotator = make_user()
    project = make_project(
        kind="text",
        config=_config(tmp_path_factory),
        members=[annotator],
        overlap=1,
        round_size=10_000,
    )
    manager = make_user(staff=True)
    _import_and_rate(project, annotator, importer=manager)

    kto_round = round_via_api(api_client_for(manager), project)

    assert kto_round.steps.get(kind="fit_reward_model").metrics["reward/skipped"] == 1
    assert not RewardModel.objects.filter(project=project).exists()
    metrics = kto_round.steps.get(kind="improve_policy").metrics
    assert {"kto/loss", "kto/kl", "rewards/desirable", "rewards/undesirable"} <= set(metrics)
    assert metrics["count/desirable"] == metrics["count/undesirable"] == 3
    assert metrics["kto/from_rating"] == 6
    assert metrics["rewards/desirable"] > metrics["rewards/undesirable"]
    assert "teacher/win_rate" in metrics  # the round's policy against the base model
    assert Policy.objects.filter(project=project, version=1).exists()
    # the next comparisons: conversations sampled from the trained policy, on the imported
    # prompts, each candidate one assistant turn
    fresh = Item.objects.filter(project=project, data__round=kto_round.number)
    assert fresh.count() == 6
    for item in fresh:
        assert item.prompt_messages in PROMPTS
        assert item.prompt == conversations.flatten(item.prompt_messages)
        assert item.messages == [{"role": "assistant", "content": item.text}]
        assert item.data["policy_version"] == 1
    opened = Comparison.objects.filter(project=project, status="open", data__round=kto_round.number)
    assert opened.count() == 3
