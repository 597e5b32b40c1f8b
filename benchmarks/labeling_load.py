"""Load on the labeling API: many annotators doing next → judge with no think time.

Starts the production server (gunicorn, several workers, DEBUG off) on loopback against
the PostgreSQL in DATABASE_URL, creates a project with N annotators (overlap 2), and runs
a bounded asyncio client: every annotator loops POST next → POST judgement R times.
Then it checks the database: every acknowledged judgement stored exactly once, no
comparison beyond its overlap, no annotator with two judgements of one comparison.
Prints a table and writes benchmarks/results/labeling_load.json.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/labeling_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup_database(database_url: str, *, annotators: int, comparisons: int) -> list[str]:
    """A fresh database with the project and the annotators' tokens."""
    import psycopg

    admin_url, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from labeling import imports, services

    call_command("migrate", verbosity=0)
    staff = get_user_model().objects.create_user("bench-staff", is_staff=True)
    project = services.create_project(slug="load", name="Load", overlap=2, round_size=10**9)
    lines = [
        json.dumps({"prompt": f"prompt {i}", "responses": [f"a {i}", f"b {i}"]})
        for i in range(comparisons)
    ]
    imports.import_jsonl(project=project, data="\n".join(lines).encode(), importer=staff)
    tokens = []
    for i in range(annotators):
        user = get_user_model().objects.create_user(f"annotator{i:03d}")
        services.add_member(project=project, user=user)
        tokens.append(Token.objects.create(user=user).key)
    return tokens


async def post(client, path: str, stats: dict, **kwargs):
    """POST, retrying on a dropped connection (next and judgement are both idempotent)."""
    import httpx

    for attempt in range(5):
        try:
            return await client.post(path, **kwargs)
        except httpx.TransportError:
            stats["retries"] += 1
            await asyncio.sleep(0.05 * (attempt + 1))
    return await client.post(path, **kwargs)


async def annotator(client, token: str, rounds: int, stats: dict) -> None:
    headers = {"Authorization": f"Token {token}"}
    for _ in range(rounds):
        t0 = time.perf_counter()
        response = await post(client, "/api/projects/load/next/", stats, headers=headers)
        stats["next"].append(time.perf_counter() - t0)
        if response.status_code == 204:
            stats["empty"] += 1
            return
        if response.status_code != 200:
            stats["errors"].append(("next", response.status_code))
            continue
        comparison = response.json()["id"]
        t0 = time.perf_counter()
        judged = await post(
            client,
            f"/api/comparisons/{comparison}/judgement/",
            stats,
            json={"choice": "left", "time_spent_ms": 1},
            headers=headers,
        )
        stats["judgement"].append(time.perf_counter() - t0)
        if judged.status_code in (200, 201):
            stats["acknowledged"].append((token, comparison))
        else:
            stats["errors"].append(("judgement", judged.status_code))


async def drive(url: str, tokens: list[str], rounds: int) -> tuple[dict, float]:
    import httpx

    stats = {
        "next": [],
        "judgement": [],
        "errors": [],
        "acknowledged": [],
        "empty": 0,
        "retries": 0,
    }
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(annotator(client, t, rounds, stats) for t in tokens))
        elapsed = time.perf_counter() - start
    return stats, elapsed


def check_database(stats: dict) -> dict:
    from django.db.models import Count
    from rest_framework.authtoken.models import Token

    from labeling.models import Comparison, Judgement

    user_of = dict(Token.objects.values_list("key", "user_id"))
    acknowledged = {(user_of[token], comparison) for token, comparison in stats["acknowledged"]}
    stored = Judgement.objects.filter(project__slug="load")
    stored_pairs = set(stored.values_list("annotator_id", "comparison_id"))
    twice = stored.values("annotator", "comparison").annotate(n=Count("pk")).filter(n__gt=1)
    over = (
        Comparison.objects.filter(project__slug="load", judgements__choice__in=["left", "right"])
        .annotate(n=Count("judgements"))
        .filter(n__gt=2)
        .count()
    )
    return {
        "acknowledged": len(acknowledged),
        "stored": stored.count(),
        "lost": len(acknowledged - stored_pairs),
        "duplicated": twice.count(),
        "over_assigned": over,
    }


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20, help="next → judge per annotator")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database", default="rlhf_load")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    database_url = base.rpartition("/")[0] + "/" + args.database
    comparisons = args.annotators * args.rounds // 2 + 50  # overlap 2: enough for everyone
    tokens = setup_database(database_url, annotators=args.annotators, comparisons=comparisons)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": "load-benchmark-secret-key-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [str(REPO / ".venv/bin/gunicorn"), "rlhf_platform.wsgi", "--bind",
         f"127.0.0.1:{args.port}", "--workers", str(args.workers), "--worker-class", "gthread",
         "--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning"],
        cwd=REPO, env=env,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{args.port}/api/schema/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        stats, elapsed = asyncio.run(drive(f"http://127.0.0.1:{args.port}", tokens, args.rounds))
    finally:
        server.terminate()
        server.wait(timeout=20)
    db = check_database(stats)
    result = {
        "annotators": args.annotators,
        "rounds": args.rounds,
        "gunicorn_workers": args.workers,
        "gunicorn_threads": args.threads,
        "seconds": elapsed,
        "judgements_per_second": len(stats["acknowledged"]) / elapsed,
        "next_ms": {q: 1000 * percentile(stats["next"], q) for q in (50, 95, 99)},
        "judgement_ms": {q: 1000 * percentile(stats["judgement"], q) for q in (50, 95, 99)},
        "errors": len(stats["errors"]),
        "client_retries": stats["retries"],
        "server_errors": sum(1 for _, code in stats["errors"] if code >= 500),
        "error_codes": sorted({f"{kind} {code}" for kind, code in stats["errors"]}),
        **db,
    }
    print(f"{'metric':<28}{'value':>12}")
    for key in ("judgements_per_second", "seconds", "errors", "server_errors", "client_retries",
                "acknowledged",
                "stored", "lost", "duplicated", "over_assigned"):  # fmt: skip
        value = result[key]
        print(f"{key:<28}{value:>12.1f}" if isinstance(value, float) else f"{key:<28}{value:>12}")
    for call in ("next", "judgement"):
        for q in (50, 95, 99):
            print(f"{call + f' p{q} (ms)':<28}{result[call + '_ms'][q]:>12.1f}")
    out = REPO / "benchmarks/results/labeling_load.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
