"""PostgreSQL stopped under a running server: requests get 503 with Retry-After, and the
server recovers by itself once the database is back, without losing a judgement."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pgserver._commands import pg_ctl

REPO = Path(__file__).resolve().parents[2]


def _manage(env, *args):
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def embedded_database(tmp_path):
    import pgserver

    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    server.psql("CREATE DATABASE outage;")
    yield server, tmp_path / "pg"
    server.cleanup()


def test_requests_during_an_outage_get_503_and_the_server_recovers(embedded_database):
    server, socket_dir = embedded_database
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@{str(socket_dir).replace('/', '%2F')}/outage",
        "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
        "DEBUG": "0",
        "SECRET_KEY": "outage-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "CRITICAL",
    }
    _manage(env, "migrate", "--noinput", "-v", "0")
    token = _manage(
        env, "shell", "-c",
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "from labeling import services;"
        "u = get_user_model().objects.create_user('ann');"
        "p = services.create_project(slug='p', name='P');"
        "services.add_member(project=p, user=u);"
        "print(Token.objects.create(user=u).key)",
    ).strip().splitlines()[-1]  # fmt: skip
    port = 8799
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "rlhf_platform.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread", "--threads", "2"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/projects/p/progress/"
    headers = {"Authorization": f"Token {token}"}
    try:
        for _ in range(100):
            try:
                if httpx.get(url, headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=socket_dir, user=server.system_user)
        during = httpx.get(url, headers=headers)
        page = httpx.get(f"http://127.0.0.1:{port}/", headers=headers)
        assert during.status_code == 503 and during.headers["Retry-After"] == "2"
        assert "retry" in during.json()["detail"]
        assert page.status_code in (302, 503)  # the login redirect needs no database

        server.ensure_postgres_running()  # PostgreSQL comes back; gunicorn is not restarted
        after = httpx.get(url, headers=headers)
        assert after.status_code == 200 and after.json() == {"judged": 0, "remaining": 0}
    finally:
        web.terminate()
        web.wait(timeout=20)
