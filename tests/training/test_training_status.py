"""GET /api/projects/{slug}/training/: what the annotator's "All done" card says about where
new comparisons come from, for members and staff."""

import pytest

from labeling import services as labeling_services
from training import services
from training.models import Run

TRAJECTORY = {"env_id": "Pendulum-v1", "render_clips": False}


def _status(client, slug: str):
    return client.get(f"/api/projects/{slug}/training/")


def test_an_import_only_text_project_has_no_training(make_user, make_project, api_client_for):
    member = make_user()
    make_project("imported", kind="text", members=[member])

    response = _status(api_client_for(member), "imported")

    assert response.status_code == 200
    assert response.json() == {
        "has_training": False,
        "round": None,
        "judgements_to_next_round": None,
    }


def test_a_trajectory_project_trains_and_says_how_many_judgements_start_the_next_round(
    make_user, make_project, make_comparison, api_client_for
):
    member = make_user()
    project = make_project(
        "traj", kind="trajectory", config=TRAJECTORY, members=[member], round_size=5
    )
    make_comparison(project)
    lease = labeling_services.assign_next_comparison(annotator=member, project=project)
    labeling_services.record_judgement(annotator=member, comparison=lease.comparison, choice="left")

    body = _status(api_client_for(member), "traj").json()

    assert body == {"has_training": True, "round": None, "judgements_to_next_round": 4}


def test_a_running_round_reports_its_number_step_and_progress(
    make_user, make_project, api_client_for
):
    member = make_user()
    project = make_project("traj", kind="trajectory", config=TRAJECTORY, members=[member])
    queued = services.start_round(project=project, trigger="test", enqueue=False)
    client = api_client_for(member)
    assert _status(client, "traj").json()["round"] == {
        "number": 1,
        "status": "queued",
        "step": "fit_reward_model",
        "progress": 0.0,
    }

    steps = Run.objects.filter(round=queued)
    steps.filter(kind=Run.Kind.FIT_REWARD_MODEL).update(status=Run.Status.SUCCEEDED, progress=1)
    steps.filter(kind=Run.Kind.IMPROVE_POLICY).update(status=Run.Status.RUNNING, progress=0.2)
    Run.objects.filter(pk=queued.pk).update(status=Run.Status.RUNNING, progress=0.4)

    body = _status(client, "traj").json()
    assert body["round"] == {
        "number": 1,
        "status": "running",
        "step": "improve_policy",
        "progress": 0.4,
    }
    assert body["judgements_to_next_round"] is None


@pytest.mark.parametrize(
    ("caller", "expected"),
    [("anonymous", 401), ("outsider", 404), ("member", 200), ("staff", 200)],
)
def test_members_and_staff_see_the_training_status(
    make_user, make_project, api_client_for, caller, expected
):
    member, outsider = make_user(), make_user()
    make_project("traj", kind="trajectory", config=TRAJECTORY, members=[member])
    make_project("elsewhere", members=[outsider])
    users = {"anonymous": None, "outsider": outsider, "member": member}
    users["staff"] = make_user(staff=True)

    response = _status(api_client_for(users[caller]), "traj")

    assert response.status_code == expected
    if expected == 200:
        assert response.json()["has_training"] is True
