"""Concurrent first requests for the OpenAPI schema in a threaded gunicorn worker: every
one gets the schema (drf-spectacular's lazy loading once gave 500s to all but one)."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_schema_requests_all_succeed():
    from django.db import connection

    settings = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{settings['USER']}@{quote(settings['HOST'], safe='')}"
        f"{':' + str(settings['PORT']) if settings['PORT'] else ''}/{settings['NAME']}",
        "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
        "DEBUG": "0",
        "SECRET_KEY": "schema-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "CRITICAL",
    }
    port = 8798
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "rlhf_platform.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread", "--threads", "8"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):  # up, without touching the schema
            try:
                httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.get(f"http://127.0.0.1:{port}/api/schema/", timeout=60),
                    range(8),
                )
            )
        assert [a.status_code for a in answers] == [200] * 8
        assert all(b"/api/comparisons/{comparison_id}/judgement/" in a.content for a in answers)
    finally:
        web.terminate()
        web.wait(timeout=20)
