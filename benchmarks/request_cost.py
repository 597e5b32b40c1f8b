"""The platform's own cost of one annotator cycle (next, then a judgement), in process.

Django's test client calls the WSGI handler directly: no gunicorn, no network, no other
clients, so what is left is this tree's Python and its queries against PostgreSQL, with
DEBUG off and every middleware on. Run with the tree to measure on PYTHONPATH (the load
benchmark's before/after runner does, for both trees); prints the milliseconds per cycle
of each annotator's batch as JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    PYTHONPATH=. .venv/bin/python benchmarks/request_cost.py
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=80, help="per annotator")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.test_settings")
    os.environ.update(DEBUG="0", ALLOWED_HOSTS="testserver")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)  # a fresh test database
    try:
        print(json.dumps(measure(args.annotators, args.cycles)))
    finally:
        teardown_databases(databases, verbosity=0)


def measure(annotators: int, cycles: int) -> list[float]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from labeling import imports, services

    User = get_user_model()
    project = services.create_project(slug="load", name="Load", overlap=2, round_size=10**9)
    lines = [
        json.dumps({"prompt": f"prompt {i}", "responses": [f"a {i}", f"b {i}"]})
        for i in range(annotators * cycles)
    ]
    importer = User.objects.create_user("importer", is_staff=True)
    imports.import_jsonl(project=project, data="\n".join(lines).encode(), importer=importer)
    keys = []
    for i in range(annotators + 1):
        user = User.objects.create_user(f"annotator{i}")
        services.add_member(project=project, user=user)
        keys.append(Token.objects.create(user=user).key)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    def run(key: str, n: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        for _ in range(n):
            lease = client.post("/api/projects/load/next/", secure=True)
            assert lease.status_code == 200, lease.content
            answer = client.post(
                f"/api/comparisons/{lease.json()['id']}/judgement/",
                {"choice": "left", "time_spent_ms": 1},
                format="json",
                secure=True,
            )
            assert answer.status_code == 201, answer.content

    run(keys[0], 20)  # warm: imports, caches, the planner
    per_cycle = []
    for key in keys[1:]:
        start = time.perf_counter()
        run(key, cycles)
        per_cycle.append((time.perf_counter() - start) / cycles * 1000)
    return per_cycle


if __name__ == "__main__":
    main()
