"""With no DATABASE_URL / CELERY_BROKER_URL the project starts its own servers."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

from rlhf_platform.embedded import embedded_database_url, embedded_redis_url

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
        subprocess.run(["kill", (data_dir / "redis.pid").read_text().strip()], check=False)
        import pgserver

        pgserver.get_server(data_dir / "pg", cleanup_mode="stop").cleanup()


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
    finally:
        pid = tmp_path / "data" / "redis.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
        import pgserver

        if (tmp_path / "data" / "pg").exists():
            pgserver.get_server(tmp_path / "data" / "pg", cleanup_mode="stop").cleanup()
