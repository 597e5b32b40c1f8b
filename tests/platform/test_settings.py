"""Production settings refuse to start half-configured and pass `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOOD_KEY = "a-long-random-production-secret-key-0123456789-abcdefghijklmnop"


def _manage(*args, **env_overrides):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings"}
    for key in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"):
        env.pop(key, None)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [({"ALLOWED_HOSTS": "example.org"}, "SECRET_KEY"), ({"SECRET_KEY": GOOD_KEY}, "ALLOWED_HOSTS")],
)
def test_production_refuses_to_start_without_secret_key_and_allowed_hosts(env, missing):
    done = _manage("check", DEBUG="0", **env)
    assert done.returncode != 0
    assert f"{missing} is not set" in done.stderr


@pytest.mark.parametrize("key", ["x", "k" * 60, "short-but-random-0123"])
def test_production_refuses_a_short_or_plain_secret_key(key):
    done = _manage("check", DEBUG="0", SECRET_KEY=key, ALLOWED_HOSTS="example.org")
    assert done.returncode != 0
    assert "SECRET_KEY is too short or too plain" in done.stderr


def test_the_proxys_https_header_is_trusted_only_when_told_of_a_proxy():
    direct = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    production = {"DEBUG": "0", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "example.org"}
    assert _python(direct, **production) == "None"
    assert _python(direct, **production, NUM_PROXIES="1") == ("('HTTP_X_FORWARDED_PROTO', 'https')")


def test_manage_py_in_a_checkout_without_production_settings_runs_in_development_mode():
    done = _manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_a_secret_key_in_the_environment_means_production_defaults_for_manage_py():
    done = _manage("check", SECRET_KEY=GOOD_KEY)
    assert done.returncode != 0
    assert "ALLOWED_HOSTS is not set" in done.stderr


def test_check_deploy_has_no_warnings_in_production():
    done = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="labels.example.org",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def _python(code: str, **env_overrides):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings", "DEBUG": "1"}
    env.update(env_overrides)
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("env", "location"),
    [
        ({"CELERY_BROKER_URL": "redis://cache.example:6379/2"}, "redis://cache.example:6379/2"),
        ({"CELERY_BROKER_URL": "redis+socket:///run/r.sock"}, "unix:///run/r.sock"),
        ({"CELERY_BROKER_URL": "amqp://rabbit//", "CACHE_URL": "redis://c:1/0"}, "redis://c:1/0"),
        ({"CELERY_BROKER_URL": "amqp://rabbit//", "CACHE_URL": ""}, "locmem"),
    ],
)
def test_the_cache_is_the_shared_redis_when_there_is_one(env, location):
    code = "from django.conf import settings; c = settings.CACHES['default']\n"
    code += "print(c.get('LOCATION') or c['BACKEND'].split('.')[-2])"
    assert _python(code, **env) == location


def test_two_processes_see_one_counter_in_the_shared_cache():
    import uuid

    key = f"probe-{uuid.uuid4().hex}"
    setter = f"from django.core.cache import cache; cache.set({key!r}, 7, 60); cache.incr({key!r})"
    _python(setter)
    reader = (
        f"from django.core.cache import cache; print(cache.get({key!r})); cache.delete({key!r})"
    )
    assert _python(reader) == "8"
