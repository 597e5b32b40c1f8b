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


async def post(session, url: str, stats: dict, **kwargs) -> tuple[int, dict | None]:
    """POST; returns (status, JSON body). Retries on a dropped connection and on a 503
    (after its Retry-After): next and judgement are both idempotent."""
    import aiohttp

    for attempt in range(60):
        try:
            async with session.post(url, **kwargs) as response:
                if response.status == 503:
                    stats["unavailable"] += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                body = await response.json() if response.status != 204 else None
                return response.status, body
        except (TimeoutError, aiohttp.ClientConnectionError):
            stats["retries"] += 1
            await asyncio.sleep(min(2.0, 0.05 * (attempt + 1)))
    raise RuntimeError(f"POST {url}: no answer after 60 tries")


async def annotator(session, base: str, token: str, rounds: int, stats: dict) -> None:
    headers = {"Authorization": f"Token {token}"}
    for _ in range(rounds):
        t0 = time.perf_counter()
        code, body = await post(session, f"{base}/api/projects/load/next/", stats, headers=headers)
        stats["next"].append(time.perf_counter() - t0)
        if code == 204:
            stats["empty"] += 1
            return
        if code != 200:
            stats["errors"].append(("next", code))
            continue
        comparison = body["id"]
        t0 = time.perf_counter()
        code, _ = await post(
            session,
            f"{base}/api/comparisons/{comparison}/judgement/",
            stats,
            json={"choice": "left", "time_spent_ms": 1},
            headers=headers,
        )
        stats["judgement"].append(time.perf_counter() - t0)
        if code in (200, 201):
            stats["acknowledged"].append((token, comparison))
        else:
            stats["errors"].append(("judgement", code))


async def drive(url: str, tokens: list[str], rounds: int) -> tuple[dict, float]:
    """Every annotator on its own keep-alive connection, all at once."""
    import aiohttp

    stats = {
        "next": [],
        "judgement": [],
        "errors": [],
        "acknowledged": [],
        "empty": 0,
        "retries": 0,
        "unavailable": 0,
    }
    connector = aiohttp.TCPConnector(limit=len(tokens), force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(annotator(session, url, t, rounds, stats) for t in tokens))
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


def wait_for_server(port: int) -> None:
    import urllib.request

    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5)
            return
        except OSError:  # refused, reset or timed out while the workers start
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def main() -> None:
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
        wait_for_server(args.port)
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
        "answered_503": stats["unavailable"],
        "server_errors": sum(1 for _, code in stats["errors"] if code >= 500),
        "error_codes": sorted({f"{kind} {code}" for kind, code in stats["errors"]}),
        **db,
    }
    print(f"{'metric':<28}{'value':>12}")
    for key in ("judgements_per_second", "seconds", "errors", "server_errors", "client_retries",
                "answered_503", "acknowledged",
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
