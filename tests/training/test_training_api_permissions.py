"""Training and its results are for staff: who gets what from the training endpoints."""

import pytest

from training import services
from training.models import Policy

TRAJECTORY = {"env_id": "Pendulum-v1", "render_clips": False}


@pytest.fixture
def world(db, make_user, make_project):
    member, outsider, staff = make_user("member"), make_user("outsider"), make_user(staff=True)
    project = make_project("traj", kind="trajectory", config=TRAJECTORY, members=[member])
    make_project("elsewhere", members=[outsider])
    round_run = services.start_round(project=project, trigger="test", enqueue=False)
    policy = Policy.objects.create(project=project, version=0, checkpoint="checkpoints/x.pt")
    users = {"anonymous": None, "outsider": outsider, "member": member, "staff": staff}
    return users, round_run, policy


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("get", "/api/projects/traj/rounds/", {"outsider": 404, "member": 403, "staff": 200}),
        ("post", "/api/projects/traj/rounds/", {"outsider": 404, "member": 403, "staff": 409}),
        ("get", "/api/projects/traj/training/", {"outsider": 404, "member": 200, "staff": 200}),
        ("get", "/api/runs/{run}/", {"outsider": 404, "member": 404, "staff": 200}),
        ("get", "/api/policies/{policy}/export/", {"outsider": 404, "member": 404, "staff": 404}),
        ("get", "/api/runs/999999/", {"outsider": 404, "member": 404, "staff": 404}),
    ],
)
@pytest.mark.parametrize("caller", ["anonymous", "outsider", "member", "staff"])
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
