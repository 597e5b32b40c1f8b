"""Rounds start from judgements (round_size), from the admin, and from the API."""

import pytest

from labeling import services as labeling_services
from labeling.models import Project
from tests.training.rounds import judge_all, wait_until_finished
from training import services
from training.models import Run

TINY = {
    "env_id": "Pendulum-v1",
    "segment_length": 10,
    "algorithm": "reinforce",
    "env_steps_per_round": 800,
    "comparisons_per_round": 4,
    "ensemble_size": 2,
    "render_clips": False,
}


@pytest.mark.worker
def test_round_size_judgements_start_a_round_on_the_worker(celery_worker_process, make_project):
    project = make_project(kind="trajectory", config=TINY, round_size=4)
    first = services.start_round(project=project, trigger="test")  # makes 4 comparisons
    assert wait_until_finished(first, timeout=120).status == "succeeded"

    judge_all(project)

    auto = Run.objects.filter(project=project, kind="round", trigger="judgements")
    assert auto.count() == 1  # the 4th judgement started exactly one round
    wait_until_finished(auto.get(), timeout=180)
    assert auto.get().status == "succeeded", auto.get().error
    assert auto.get().steps.get(kind="fit_reward_model").metrics["reward/n_pairs"] == 4


@pytest.mark.django_db
def test_fewer_than_round_size_judgements_start_nothing(make_user, make_project, make_comparison):
    user = make_user()
    project = make_project(kind="trajectory", config=TINY, round_size=3, members=[user])
    for _ in range(2):
        make_comparison(project)
    for _ in range(2):
        lease = labeling_services.assign_next_comparison(annotator=user, project=project)
        labeling_services.record_judgement(
            annotator=user, comparison=lease.comparison, choice="left"
        )
    assert services.maybe_start_round_after_judgement(project_id=project.pk) is None
    assert not Run.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_the_admin_action_starts_a_round_and_reports_one_in_progress(
    client, make_user, make_project
):
    make_project("traj", kind="trajectory", config=TINY)
    make_project("words")
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    ids = list(Project.objects.values_list("pk", flat=True))
    response = client.post(
        "/admin/labeling/project/",
        {"action": "start_round", "index": 0, "_selected_action": ids},
        follow=True,
    )
    text = response.content.decode().lower()
    assert "traj: round 1 queued" in text
    assert "words: " in text and "no config.model_dir" in text
    again = client.post(
        "/admin/labeling/project/",
        {"action": "start_round", "index": 0, "_selected_action": ids},
        follow=True,
    )
    assert "rounds of one project never overlap" in again.content.decode().lower()
    assert Run.objects.filter(kind="round").count() == 1
