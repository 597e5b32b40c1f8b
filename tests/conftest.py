"""Shared fixtures: small helpers that build users, projects and comparisons."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core import roles
from labeling import services
from labeling.models import Item, Project

_counter = itertools.count(1)


@pytest.fixture
def make_user(db):
    def make(
        username: str | None = None,
        *,
        staff: bool = False,
        role: str | None = None,
        password: str = "pw",
    ):
        """An annotator; ``staff=True`` a project manager; ``role`` any role of core.roles."""
        username = username or f"user{next(_counter)}"
        user = get_user_model().objects.create_user(username=username, password=password)
        roles.set_role(user, role or ("manager" if staff else "annotator"))
        return user

    return make


@pytest.fixture
def make_project(db):
    def make(slug: str | None = None, *, members=(), **fields) -> Project:
        slug = slug or f"project-{next(_counter)}"
        project = services.create_project(slug=slug, name=slug.title(), **fields)
        for user in members:
            services.add_member(project=project, user=user)
        return project

    return make


@pytest.fixture
def make_comparison(db):
    def make(project: Project, k: int = 2, *, prompt: str = "a prompt", gold=None, texts=None):
        texts = texts or [f"response {next(_counter)}" for _ in range(k)]
        items = [Item.objects.create(project=project, prompt=prompt, text=t) for t in texts]
        return services.create_comparison(project=project, items=items, gold_ranking=gold)

    return make


@pytest.fixture
def api_client_for():
    """An APIClient authenticated with the user's token (or anonymous for None)."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def media_root(settings, tmp_path):
    """Files written by this test (and by its worker) go to a fresh folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path, media_root):
    """Start a real Celery worker process on the test database and the real broker.

    The worker and this test use queues of their own (CELERY_QUEUE_PREFIX), so a shared
    broker's other messages are never taken and chains stay between the two. Yields the
    prefix; the worker is stopped afterwards and its log printed (shown on failure)."""
    import os
    import subprocess
    import sys
    import uuid

    from django.db import connection

    from rlhf_platform.celery import app

    prefix = f"test-{uuid.uuid4().hex[:12]}-"
    db = connection.settings_dict
    host = db["HOST"] or ""
    netloc = f"{db['USER']}@{host.replace('/', '%2F')}" + (f":{db['PORT']}" if db["PORT"] else "")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "rlhf_platform.test_settings",
        "DATABASE_URL": f"postgresql://{netloc}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "CELERY_QUEUE_PREFIX": prefix,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    queues = ",".join(prefix + q for q in ("default", "train", "render"))
    log = open(tmp_path / "worker.log", "w+")

    class Worker:
        """The worker process; ``restart()`` starts a fresh one (after a kill, say)."""

        def __init__(self):
            self.process = None
            self.restart()

        def restart(self):
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "rlhf_platform", "worker", "--pool=solo",
                 "-Q", queues, "--without-heartbeat", "--without-gossip", "--without-mingle",
                 "--loglevel=INFO"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    worker = Worker()
    saved = app.conf.task_default_queue

    def use_default_queue(default_queue):
        app.conf.task_default_queue = default_queue
        app.amqp.__dict__.pop("queues", None)  # a cached property built from the default

    settings.CELERY_QUEUE_PREFIX = prefix  # the steps' queues (training.steps.queue_of)
    use_default_queue(prefix + "default")
    try:
        yield worker
    finally:
        use_default_queue(saved)
        worker.process.terminate()
        try:
            worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.process.kill()
        log.seek(0)
        print(log.read()[-6000:])  # shown when the test fails
        log.close()
