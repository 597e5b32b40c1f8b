"""A conversational text project trains on the final assistant turn of each conversation
and samples conversations: a real Celery worker runs a DPO round on one, on real
PostgreSQL; imported conversations become rendered (context, final turn) pairs."""

import pytest

from labeling import conversations
from labeling.config import project_config
from labeling.imports import import_lines
from labeling.models import Comparison, Item
from tests.ml.lm.lm_fixtures import tiny_lm_dir
from tests.training.rounds import judge_all, round_via_api
from training.kinds import text_reward
from training.kinds.text import judged_dpo_pairs, prompts_of
from training.kinds.text_items import sampled_item, shared_context
from training.ml.lm import chat, lm
from training.models import Policy

PROMPTS = [
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "How was the park?"},
        {"role": "assistant", "content": "It was lovely."},
        {"role": "user", "content": f"And {topic}?"},
    ]
    for topic in ("the cafe", "the book", "the soup")
]


@pytest.mark.worker
def test_a_dpo_round_on_a_conversational_project_trains_and_samples_conversations(
    celery_worker_process, tmp_path_factory, make_user, make_project, api_client_for
):
    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": PROMPTS,
        "eval_prompts": PROMPTS[:1],
        "k": 3,
        "max_new_tokens": 10,
        "algorithm": "dpo",
        "comparisons_per_round": 3,
        "seed": 1,
    }
    project = make_project(kind="text", config=config, round_size=10_000)
    client = api_client_for(make_user(staff=True))

    round_via_api(client, project)  # round 1: sample conversations from the base model
    sampled = Item.objects.filter(project=project, data__round=1)
    assert sampled.count() == 9
    for item in sampled:
        assert item.prompt_messages in PROMPTS
        assert item.prompt == conversations.flatten(item.prompt_messages)
        assert item.messages == [{"role": "assistant", "content": item.text}]
    assert judge_all(project) == 3  # the lexicon teacher ranks the final turns

    dpo_round = round_via_api(client, project)  # round 2: DPO on the conversations
    metrics = dpo_round.steps.get(kind="improve_policy").metrics
    assert {"rewards/margins", "logps/chosen", "teacher/win_rate"} <= set(metrics)
    assert Policy.objects.filter(project=project, version=1).exists()
    fresh = Item.objects.filter(project=project, data__round=2)
    assert fresh.count() == 9
    assert all(i.messages and i.prompt_messages in PROMPTS for i in fresh)
    assert all(i.data["policy_version"] == 1 for i in fresh)
    assert Comparison.objects.filter(project=project, status="open", data__round=2).count() == 3


@pytest.mark.django_db
def test_imported_conversations_train_as_rendered_context_and_final_turn(
    tmp_path_factory, make_user, make_project
):
    model_dir = tiny_lm_dir(tmp_path_factory)
    project = make_project(kind="text", config={"model_dir": str(model_dir)})
    lines = [
        {
            "prompt": PROMPTS[0],
            "chosen": [{"role": "assistant", "content": "The cafe is great."}],
            "rejected": [{"role": "assistant", "content": "The cafe is awful."}],
        },
        {"prompt": "Question: How was the lake?\nAnswer:", "responses": [" Calm.", " Cold."]},
    ]
    import_lines(project=project, lines=list(enumerate(lines, 1)), importer=make_user())
    tokenizer = lm.load_tokenizer(model_dir)

    ((texts, _),) = judged_dpo_pairs(project, tokenizer)  # the judged pair line
    context = chat.render_context(tokenizer, PROMPTS[0])
    assert texts == (context, "The cafe is great.", "The cafe is awful.")
    assert context.endswith("Question: And the cafe?\nAnswer:")
    config = project_config("text", project.config)
    ((group, _),) = text_reward.judged_groups(project, tokenizer, config)
    assert (group.prompt, group.responses) == (context, texts[1:])
    # the project samples from the imported prompts: a conversation's as its messages
    assert sorted(prompts_of(project, config), key=str) == sorted(
        [PROMPTS[0], "Question: How was the lake?\nAnswer:"], key=str
    )


@pytest.mark.django_db
def test_a_bad_message_in_config_prompts_is_400_naming_it(make_user, api_client_for):
    client = api_client_for(make_user(staff=True))
    bad = [{"role": "user", "content": "Hi"}, {"role": "robot", "content": "Beep"}]
    body = {"slug": "chat", "name": "x", "kind": "text", "config": {"prompts": ["Hi", bad]}}

    response = client.post("/api/projects/", body, format="json")

    assert response.status_code == 400
    assert "prompts[1][1].role" in str(response.json())
    ends_with_assistant = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
    ]
    body["config"] = {"eval_prompts": [ends_with_assistant]}
    response = client.post("/api/projects/", body, format="json")
    assert response.status_code == 400
    assert "eval_prompts[0][1].role" in str(response.json())


def test_candidates_with_different_earlier_turns_share_only_their_common_context():
    same = shared_context([("ctx", " a"), ("ctx", " b")])
    assert same == ("ctx", [" a", " b"])
    # the turns that differ go with each response, the common part stays context
    differ = shared_context([("Q\nAnswer: yes<e>Answer:", " a"), ("Q\nAnswer: no<e>Answer:", " b")])
    assert differ == ("Q\nAnswer: ", ["yes<e>Answer: a", "no<e>Answer: b"])


def test_a_sample_to_a_message_prompt_is_a_conversation_item():
    plain = sampled_item("Question: Hi?\nAnswer:", " Hello.", {"policy_version": 0})
    assert (plain.prompt, plain.text, plain.prompt_messages, plain.messages) == (
        "Question: Hi?\nAnswer:",
        " Hello.",
        None,
        None,
    )
    item = sampled_item(PROMPTS[0], " Great.", {})
    assert item.prompt_messages == PROMPTS[0] and item.prompt == conversations.flatten(PROMPTS[0])
    assert (item.text, item.messages) == (" Great.", [{"role": "assistant", "content": " Great."}])
