"""A real Celery worker runs whole rounds of a trajectory project on real PostgreSQL."""

import imageio_ffmpeg
import pytest
from django.core.files.storage import default_storage

from labeling.models import Comparison, Item
from tests.training.rounds import judge_all, wait_until_finished
from training import services
from training.models import Policy, RewardModel, Run

TINY = {
    "env_id": "Pendulum-v1",
    "segment_length": 10,
    "fps": 10,
    "algorithm": "reinforce",
    "env_steps_per_round": 800,
    "comparisons_per_round": 6,
    "selection": "disagreement",
    "ensemble_size": 2,
    "render_clips": True,
    "seed": 1,
    "eval_episodes": 3,
    "reward_scale": 0.5,
    "reinforce": {"learning_rate": 3e-3, "num_envs": 4},
}


@pytest.mark.worker
def test_a_worker_runs_whole_rounds_and_new_clips_reach_the_queue(
    celery_worker_process, make_user, make_project, api_client_for
):
    staff = make_user(staff=True)
    project = make_project(kind="trajectory", config=TINY, round_size=10_000)
    client = api_client_for(staff)

    # Round 1: nothing judged yet, so it only makes the first comparisons.
    response = client.post(f"/api/projects/{project.slug}/rounds/")
    assert response.status_code == 202, response.json()
    first = wait_until_finished(Run.objects.get(pk=response.json()["id"]), timeout=240)
    assert first.status == "succeeded", first.error
    assert Comparison.objects.filter(project=project).count() == 6

    judged = judge_all(project)
    assert judged == 6

    # Round 2: fit the reward model, improve the policy, make new comparisons.
    response = client.post(f"/api/projects/{project.slug}/rounds/")
    assert response.status_code == 202
    second = wait_until_finished(Run.objects.get(pk=response.json()["id"]), timeout=240)
    assert second.status == "succeeded", second.error
    assert set(second.steps.values_list("status", flat=True)) == {"succeeded"}
    status = client.get(f"/api/runs/{second.pk}/").json()
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    assert "reward/heldout_accuracy" in next(
        s["metrics"] for s in status["steps"] if s["kind"] == "fit_reward_model"
    )

    reward_model = RewardModel.objects.get(project=project)
    policy = Policy.objects.filter(project=project).order_by("-version").first()
    assert reward_model.version == 1 and policy.version == 1
    assert policy.metrics["policy/reward_model_version"] == 1
    assert policy.metrics["policy/reward_scale"] == 0.5  # the project's, not the family's
    assert policy.metrics["charts/true_return_se"] > 0  # over eval_episodes = 3
    assert default_storage.exists(reward_model.checkpoint.name)
    assert default_storage.exists(policy.checkpoint.name)

    fresh = Comparison.objects.filter(project=project, status="open", data__round=2)
    assert fresh.count() == 6
    item = Item.objects.filter(comparisons__in=fresh).first()
    clip_path = default_storage.path(item.clip.name)
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(clip_path)
    assert frames == TINY["segment_length"]
    reader = imageio_ffmpeg.read_frames(clip_path)
    assert next(reader)["codec"] == "h264"
    assert default_storage.exists(item.poster.name)


@pytest.mark.django_db
def test_rounds_of_one_project_never_overlap(make_project):
    project = make_project(kind="trajectory", config=TINY)
    first = services.start_round(project=project, trigger="test", enqueue=False)
    with pytest.raises(services.RoundInProgress):
        services.start_round(project=project, trigger="test", enqueue=False)
    Run.objects.filter(pk=first.pk).update(status="succeeded")
    second = services.start_round(project=project, trigger="test", enqueue=False)
    assert second.number == 2
