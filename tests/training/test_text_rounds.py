"""A real Celery worker runs a DPO round and a reward-model + policy-gradient round of a
text project on a tiny language model, on real PostgreSQL."""

import pytest

from labeling.models import Comparison, Item
from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from tests.training.rounds import judge_all, round_via_api
from training import artifacts
from training.ml.lm import lm
from training.models import Policy, RewardModel


@pytest.mark.worker
def test_dpo_then_reward_model_and_policy_gradient_rounds_on_a_worker(
    celery_worker_process, tmp_path_factory, make_user, make_project, api_client_for
):
    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(6),
        "k": 3,
        "max_new_tokens": 12,
        "algorithm": "dpo",
        "comparisons_per_round": 6,
        "seed": 1,
    }
    project = make_project(kind="text", config=config, round_size=10_000)
    client = api_client_for(make_user(staff=True))

    round_via_api(client, project)  # round 1: sample from the base model
    assert Comparison.objects.filter(project=project).count() == 6
    assert judge_all(project) == 6  # K = 3 rankings by the lexicon teacher

    dpo_round = round_via_api(client, project)  # round 2: DPO on the rankings
    dpo_metrics = dpo_round.steps.get(kind="improve_policy").metrics
    assert {"rewards/margins", "rewards/accuracies", "logps/chosen", "kl"} & set(dpo_metrics)
    assert dpo_round.steps.get(kind="fit_reward_model").metrics == {"reward/skipped": 1}
    dpo_policy = Policy.objects.get(project=project, version=1)
    fresh = Item.objects.filter(project=project, data__round=2)
    assert fresh.count() == 18 and all(i.data["policy_version"] == 1 for i in fresh)

    with artifacts.local_directory(dpo_policy.checkpoint) as path:
        model, _ = lm.load_policy(path)  # a Hugging Face model directory
        assert (path / "config.json").is_file() and model.config.model_type == "gpt2"

    assert judge_all(project) == 6
    project.config = {**project.config, "algorithm": "reinforce"}
    project.save()
    pg_round = round_via_api(client, project)  # round 3: reward model, then REINFORCE with KL
    reward_model = RewardModel.objects.get(project=project)
    assert "reward/heldout_accuracy" in reward_model.metrics or reward_model.metrics
    pg_metrics = pg_round.steps.get(kind="improve_policy").metrics
    assert "kl" in pg_metrics and "teacher/mean_score" in pg_metrics
    assert Policy.objects.filter(project=project).order_by("-version").first().version == 2
    assert Comparison.objects.filter(project=project, status="open", data__round=3).count() == 6


@pytest.mark.django_db
def test_a_text_policy_exports_as_a_model_directory(
    tmp_path, tmp_path_factory, media_root, make_project, make_user, client
):
    from django.core.management import call_command

    from training import services
    from training.runner import run_round_here

    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(2),
        "max_new_tokens": 8,
        "comparisons_per_round": 2,
    }
    project = make_project("words", kind="text", config=config)
    run_round_here(services.start_round(project=project, trigger="test", enqueue=False))
    initial = Policy.objects.get(project=project, version=0)

    call_command("export_policy", project="words", out=tmp_path / "exported")
    model, tokenizer = lm.load_causal_lm(tmp_path / "exported")
    assert model.config.model_type == "gpt2" and tokenizer.eos_token

    client.force_login(make_user(staff=True))
    response = client.get(f"/api/policies/{initial.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('words-policy-v0.zip"')
    client.force_login(make_user())
    assert client.get(f"/api/policies/{initial.pk}/export/").status_code == 404
