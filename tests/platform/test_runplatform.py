"""`make run`: a taken port stops it at once; the demo language model builds on a worker in
the background, its progress on the page, and its project appears when it is ready."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from demo import lm_build
from demo.tasks import build_demo_lm
from labeling.models import Comparison, Project
from training.models import Run

REPO = Path(__file__).resolve().parents[2]


def test_make_run_on_a_taken_port_exits_non_zero_within_seconds_naming_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["PORT"] = str(port)  # DATABASE_URL and CELERY_BROKER_URL: this run's servers
        started = time.monotonic()
        done = subprocess.run(
            ["make", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    assert f"Port {port} on 127.0.0.1 is taken" in done.stderr
    assert f"PORT={port + 1} make run" in done.stderr
    assert "The platform is up" not in done.stdout


@pytest.fixture
def data_dir(tmp_path, settings, monkeypatch):
    """A fresh DATA_DIR for this test and for the worker it starts (set before the worker)."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("DATA_DIR", str(path))
    settings.DATA_DIR = path
    return path


def test_the_pages_show_the_demo_models_build_while_it_runs(data_dir, client, make_user):
    client.force_login(make_user())
    assert "demo language model" not in client.get("/").content.decode()
    assert client.get("/demo/lm-status/").json()["state"] is None

    lm_build.write_status(lm_build.BuildStatus(lm_build.State.BUILDING, 0.42))
    page = client.get("/").content.decode()
    assert "The demo language model is being built on the worker: 42%" in page
    assert client.get("/demo/lm-status/").json() == {
        "state": "building",
        "fraction": 0.42,
        "error": "",
        "url": None,
    }

    lm_build.write_status(lm_build.BuildStatus(lm_build.State.FAILED, 0.0, "OSError: disk full"))
    assert "Building the demo language model failed: OSError: disk full" in (
        client.get("/").content.decode()
    )


def test_seed_demo_makes_its_well_known_accounts_only_in_development(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="seed_demo runs only with DEBUG=1"):
        call_command("seed_demo")
    assert not get_user_model().objects.filter(username="admin").exists()


def test_seed_demo_makes_a_conversation_project_with_the_whole_feedback_form(db, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")  # a second run changes nothing
    chat = Project.objects.get(slug="demo-chat")
    assert set(chat.config["feedback"]) == {"strength", "ratings", "critique", "edit", "both_bad"}
    assert [c["name"] for c in chat.config["criteria"]] == ["helpful", "honest"]
    assert chat.comparisons.count() == 6
    items = list(chat.items.all())
    assert all(item.prompt_messages and item.messages for item in items)
    assert all(item.messages[-1]["role"] == "assistant" for item in items)
    assert sorted(chat.members.values_list("username", flat=True)) == ["admin", "annotator"]


def test_the_build_status_is_for_logged_in_users(data_dir, client):
    response = client.get("/demo/lm-status/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.worker
def test_the_demo_model_builds_on_the_worker_then_its_project_appears_with_comparisons(
    data_dir, celery_worker_process, settings
):
    settings.DEBUG = True  # demo accounts are for development only
    call_command("seed_demo")
    assert not Project.objects.filter(slug=lm_build.SLUG).exists()  # not built yet

    lm_build.write_status(lm_build.BuildStatus(lm_build.State.QUEUED))
    build_demo_lm.apply_async(kwargs={"steps": 20}, queue=settings.CELERY_QUEUE_PREFIX + "train")

    deadline = time.monotonic() + 240
    while not Comparison.objects.filter(project__slug=lm_build.SLUG).exists():
        assert time.monotonic() < deadline, "demo-lm has no comparisons after 240 s"
        assert (lm_build.read_status() or lm_build.BuildStatus("?")).state != "failed"
        time.sleep(0.5)

    project = Project.objects.get(slug=lm_build.SLUG)
    assert lm_build.read_status().state == lm_build.State.READY
    assert lm_build.is_built(data_dir / "demo-lm")
    assert sorted(project.members.values_list("username", flat=True)) == ["admin", "annotator"]
    assert Run.objects.filter(project=project, kind="round", trigger="seed").count() == 1

    # a second build (runplatform restarted, say) changes nothing
    assert lm_build.build_and_seed() == "ready"
    assert Project.objects.filter(slug=lm_build.SLUG).count() == 1
    assert Run.objects.filter(project=project, kind="round").count() == 1
