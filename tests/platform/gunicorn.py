"""The production server (gunicorn, DEBUG off) in a subprocess, for tests that need a real
one: a database pulled from under it, or concurrent first requests in threads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def production_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
        "DEBUG": "0",
        "SECRET_KEY": "gunicorn-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "CRITICAL",
    }


@contextmanager
def gunicorn(env: dict[str, str], *, port: int, threads: int) -> Iterator[str]:
    """One gthread worker with ``threads`` threads; yields its base URL once the login
    page (which needs no database) answers."""
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "rlhf_platform.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
         "--threads", str(threads)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(f"{base}/accounts/login/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        yield base
    finally:
        web.terminate()
        web.wait(timeout=20)
