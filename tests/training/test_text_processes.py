"""A text project's DPO step over torchrun processes (config.processes): on a real worker
it stores a new policy version; the processes' progress reaches the step's row; a process
that fails fails the step, saying why; a bad processes value is a 400 naming the key."""

from __future__ import annotations

import pytest

from labeling.models import Item
from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from tests.training.rounds import judge_all, round_via_api
from training import artifacts, services
from training.models import Policy, Run


def _config(tmp_path_factory, **more) -> dict:
    return {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(6),
        "k": 3,
        "max_new_tokens": 12,
        "algorithm": "dpo",
        "comparisons_per_round": 6,
        "seed": 1,
        "processes": 2,
        **more,
    }


@pytest.mark.worker
def test_a_dpo_round_over_two_processes_on_a_worker_stores_a_new_policy_version(
    celery_worker_process, tmp_path_factory, make_user, make_project, api_client_for
):
    project = make_project(kind="text", config=_config(tmp_path_factory), round_size=10_000)
    client = api_client_for(make_user(staff=True))
    round_via_api(client, project)  # round 1: samples from the base model
    assert judge_all(project) == 6

    dpo_round = round_via_api(client, project)  # round 2: DPO in two torchrun processes
    step = dpo_round.steps.get(kind="improve_policy")
    assert step.progress == 1.0 and step.metrics["rewards/margins"] > 0
    assert step.metrics["rewards/accuracies"] > 0.5
    v1 = Policy.objects.get(project=project, version=1)
    with artifacts.local_directory(v1.checkpoint) as path:
        assert (path / "config.json").is_file()  # a whole model, as one process stores it
    fresh = Item.objects.filter(project=project, data__round=2)
    assert fresh.count() == 18 and all(item.data["policy_version"] == 1 for item in fresh)


def _judged_project(tmp_path_factory, make_project):
    from training.runner import run_round_here

    project = make_project(kind="text", config=_config(tmp_path_factory))
    run_round_here(services.start_round(project=project, trigger="test", enqueue=False))
    assert judge_all(project) == 6
    return project


def test_the_processes_progress_reaches_the_steps_row(
    db, media_root, tmp_path_factory, make_project, monkeypatch
):
    from training.runner import run_round_here

    project = _judged_project(tmp_path_factory, make_project)
    seen: list[float] = []
    update_round_progress = services._update_round_progress

    def spy(round_id: int) -> None:  # after each heartbeat of a step of round round_id
        step = Run.objects.get(round_id=round_id, kind=Run.Kind.IMPROVE_POLICY)
        if step.status == Run.Status.RUNNING:
            seen.append(step.progress)
        update_round_progress(round_id)

    monkeypatch.setattr(services, "_update_round_progress", spy)
    round_run = run_round_here(services.start_round(project=project, trigger="test", enqueue=False))

    assert round_run.status == "succeeded", round_run.error
    # 18 pairs, batches of 8, 2 epochs: 6 steps reported by process 0, as 0.8 of the step
    training = [p for p in seen if 0.0 < p <= 0.8]
    assert len(training) >= 6 and training == sorted(training)
    assert training[-1] == pytest.approx(0.8)
    assert Policy.objects.filter(project=project, version=1).exists()


def test_a_failing_process_fails_the_step_with_its_error_on_the_run_row(
    db, media_root, tmp_path_factory, make_project, monkeypatch
):
    from training.ml.lm import dpo_processes
    from training.runner import run_round_here

    project = _judged_project(tmp_path_factory, make_project)
    # The processes get a policy directory without its model: each fails to load it.
    monkeypatch.setattr(
        dpo_processes.lm,
        "save_policy",
        lambda model, tokenizer, path: tokenizer.save_pretrained(path),
    )
    round_run = services.start_round(project=project, trigger="test", enqueue=False)
    with pytest.raises(RuntimeError, match="DPO over 2 processes failed"):
        run_round_here(round_run)

    step = round_run.steps.get(kind=Run.Kind.IMPROVE_POLICY)
    assert step.status == Run.Status.FAILED
    first_line = step.error.splitlines()[0]
    assert "FileNotFoundError: No model at" in first_line, step.error
    assert "torchrun's stderr" in step.error
    round_run.refresh_from_db()
    assert round_run.status == Run.Status.FAILED
    assert "DPO over 2 processes failed" in round_run.error
    assert not Policy.objects.filter(project=project, version=1).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "config",
    [
        {"processes": 0},
        {"processes": "2"},
        {"processes": 2.0},
        {"processes": True},
        {"processes": 65},
        {"processes": 2, "algorithm": "reinforce"},
    ],
)
def test_a_bad_processes_value_is_a_400_naming_the_key(make_user, api_client_for, config):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "spread", "name": "Spread", "kind": "text", "config": config},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert "processes" in response.json()["config"], response.json()


@pytest.mark.django_db
def test_two_processes_with_dpo_is_a_valid_config(make_user, api_client_for):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "spread", "name": "Spread", "kind": "text", "config": {"processes": 2}},
        format="json",
    )
    assert response.status_code == 201, response.json()
