"""Concurrent first requests for the OpenAPI schema in a threaded gunicorn worker: every
one gets the schema (drf-spectacular's lazy loading once gave 500s to all but one)."""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest

from tests.platform.gunicorn import gunicorn, production_env


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_schema_requests_all_succeed():
    from django.db import connection

    settings = connection.settings_dict
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    env = production_env(
        f"postgresql://{settings['USER']}@{quote(settings['HOST'], safe='')}{port}"
        f"/{settings['NAME']}"
    )
    with gunicorn(env, port=8798, threads=8) as base, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{base}/api/schema/", timeout=60), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert all(b"/api/comparisons/{comparison_id}/judgement/" in a.content for a in answers)
