"""With no DATABASE_URL / CELERY_BROKER_URL the project starts its own servers."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

from rlhf_platform.embedded import (
    embedded_database_url,
    embedded_redis_url,
    postgres_running,
    stop,
)

REPO = Path(__file__).resolve().parents[2]

# pgserver logs from an atexit hook, after pytest has closed the streams it captured.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def test_embedded_postgres_and_redis_start_and_are_reused(tmp_path):
    data_dir = tmp_path / "data"
    db_url = embedded_database_url(data_dir)
    broker_url = embedded_redis_url(data_dir)
    try:
        socket_dir = data_dir / "pg"
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="rlhf") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        client = redis.Redis(unix_socket_path=str(data_dir / "redis.sock"))
        assert client.ping()
        # a second call (another process, in real use) reuses the running servers
        assert embedded_database_url(data_dir) == db_url
        assert embedded_redis_url(data_dir) == broker_url
    finally:
        assert stop(data_dir) == ["PostgreSQL", "Redis"]
    assert not postgres_running(data_dir)
    assert not (data_dir / "redis.sock").exists()


def test_manage_py_migrates_onto_the_embedded_database_when_no_url_is_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DATA_DIR=str(tmp_path / "data"), DEBUG="1", DJANGO_SETTINGS_MODULE="")
    env.pop("DJANGO_SETTINGS_MODULE")
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        shown = subprocess.run(
            [sys.executable, "manage.py", "showmigrations", "labeling"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "[X] 0001_initial" in shown.stdout, shown.stdout + shown.stderr
        for noise in ("XDG_RUNTIME_DIR", "remaining pids", "cleaning last handle"):
            assert noise not in shown.stderr + shown.stdout
    finally:
        stop(tmp_path / "data")


def _setup_django(env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_test_run_stops_the_servers_it_started_and_leaves_running_ones(tmp_path):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="rlhf_platform.test_settings")
    try:
        _setup_django(env)  # starts both servers, and stops them as it exits
        assert (data_dir / "pg").is_dir()
        assert not postgres_running(data_dir)
        assert not (data_dir / "redis.sock").exists()

        embedded_database_url(data_dir)  # now running before the "test run" starts
        embedded_redis_url(data_dir)
        _setup_django(env)
        assert postgres_running(data_dir)
        assert redis.Redis(unix_socket_path=str(data_dir / "redis.sock")).ping()
    finally:
        stop(data_dir)
