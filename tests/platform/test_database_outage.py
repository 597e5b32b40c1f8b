"""PostgreSQL stopped under a running server: requests get 503 with Retry-After, and the
server recovers by itself once the database is back, without losing a judgement."""

import subprocess
import sys

import httpx
import pytest
from pgserver._commands import pg_ctl

from tests.platform.gunicorn import REPO, gunicorn, production_env


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
    env = production_env(f"postgresql://postgres@{str(socket_dir).replace('/', '%2F')}/outage")
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
    headers = {"Authorization": f"Token {token}"}
    with gunicorn(env, port=8799, threads=2) as base:
        url = f"{base}/api/projects/p/progress/"
        assert httpx.get(url, headers=headers).status_code == 200

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=socket_dir, user=server.system_user)
        during = httpx.get(url, headers=headers)
        page = httpx.get(f"{base}/", headers=headers)
        assert during.status_code == 503 and during.headers["Retry-After"] == "2"
        assert "retry" in during.json()["detail"]
        assert page.status_code in (302, 503)  # the login redirect needs no database

        server.ensure_postgres_running()  # PostgreSQL comes back; gunicorn is not restarted
        after = httpx.get(url, headers=headers)
        assert after.status_code == 200 and after.json() == {"judged": 0, "remaining": 0}
