"""Training and its results are for staff: who gets what from the training endpoints."""

import pytest

from training import services
from training.models import Policy

TRAJECTORY = {"env_id": "Pendulum-v1", "render_clips": False}
# staff: a project manager; reviewer: the reviewer role; bare: staff without permissions.
# The policy's checkpoint is not in storage, so even a manager gets 404 for its file.
ANNOTATORS = {"outsider": 404, "member": 403}
HIDDEN = {"outsider": 404, "member": 404}


def all_staff(status: int) -> dict:
    return {"staff": status, "reviewer": status, "bare": status}


@pytest.fixture
def world(db, make_user, make_project):
    member, outsider, staff = make_user("member"), make_user("outsider"), make_user(staff=True)
    reviewer, bare = make_user(role="reviewer"), make_user(role="manager")
    bare.groups.clear()  # staff status without any permission
    project = make_project("traj", kind="trajectory", config=TRAJECTORY, members=[member])
    make_project("elsewhere", members=[outsider])
    round_run = services.start_round(project=project, trigger="test", enqueue=False)
    policy = Policy.objects.create(project=project, version=0, checkpoint="checkpoints/x.pt")
    users = {"anonymous": None, "outsider": outsider, "member": member, "staff": staff}
    users |= {"reviewer": reviewer, "bare": bare}
    return users, round_run, policy


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "get",
            "/api/projects/traj/rounds/",
            {**ANNOTATORS, "staff": 200, "reviewer": 200, "bare": 403},
        ),
        (
            "post",
            "/api/projects/traj/rounds/",
            {**ANNOTATORS, "staff": 409, "reviewer": 403, "bare": 403},
        ),
        ("get", "/api/projects/traj/training/", {"outsider": 404, "member": 200, **all_staff(200)}),
        ("get", "/api/runs/{run}/", {**HIDDEN, "staff": 200, "reviewer": 200, "bare": 403}),
        (
            "get",
            "/api/policies/{policy}/export/",
            {**HIDDEN, "staff": 404, "reviewer": 403, "bare": 403},
        ),
        ("get", "/api/runs/999999/", {**HIDDEN, **all_staff(404)}),
    ],
)
@pytest.mark.parametrize("caller", ["anonymous", "outsider", "member", "staff", "reviewer", "bare"])
def test_training_endpoints_answer_each_caller(
    world, api_client_for, method, path, expected, caller
):
    users, round_run, policy = world
    client = api_client_for(users[caller])
    client.raise_request_exception = False
    response = getattr(client, method)(path.format(run=round_run.pk, policy=policy.pk))
    want = 401 if caller == "anonymous" else expected[caller]
    assert response.status_code == want, response.content[:300]
    if want >= 400:
        assert response.json()["detail"]
