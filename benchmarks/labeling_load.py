"""Load on the labeling API: many annotators doing next → judge with no think time.

Starts the production server (gunicorn, several workers, DEBUG off) on loopback against
PostgreSQL, creates a project with N annotators (overlap 2), and runs a bounded asyncio
client (aiohttp): every annotator loops next → judge R times on its own keep-alive
connection. Afterwards it checks the database: every acknowledged judgement stored exactly
once, no comparison beyond its overlap, no annotator with two judgements of one comparison.

Scenarios, side by side in one run (a fresh database each):
  floor     the same client and server, every call a GET the API answers with a JSON 404
            without touching the database: the most requests per second this stack serves
            on this machine, the ceiling the others are measured against;
  separate  POST next, then POST judgement (the issue's protocol);
  combined  POST judgement with "next": true, which also leases the next comparison (what
            the annotator page does): one call per judgement;
  paced     separate, but each annotator starts a cycle on a schedule so that --rate
            judgements/s are offered in all: the latency below saturation.
With --restart-postgres-after S the run uses its own embedded PostgreSQL (pgserver, in a
temporary folder) and restarts it S seconds into the load (pg_ctl restart -m fast): clients
retry on 503 and on dropped connections, and the checks must still find every
acknowledged judgement stored once.

Prints a table and writes benchmarks/results/labeling_load.json (or, for the restart run,
labeling_load_restart.json).

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

from load_client import drive, floor, percentile  # noqa: E402  (beside this script)


def setup_database(database_url: str, *, annotators: int, comparisons: int) -> list[str]:
    """A fresh database with the project and the annotators' tokens."""
    import psycopg

    if "DJANGO_SETTINGS_MODULE" in os.environ:
        from django.db import connections

        connections.close_all()  # the previous scenario's database is dropped below
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
    from django.db import connection
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
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum keeps them in service
    return tokens


def check_database(stats: dict) -> dict:
    from django.db import connections

    connections.close_all()  # this process's connection may predate a restart
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


class EmbeddedPostgres:
    """A private PostgreSQL (pgserver) that this benchmark may restart."""

    def __init__(self):
        import tempfile

        import pgserver

        self.path = Path(tempfile.mkdtemp(prefix="rlhf-load-pg-"))
        self.server = pgserver.get_server(self.path, cleanup_mode="delete")
        self.url = f"postgresql://postgres@{str(self.path).replace('/', '%2F')}/postgres"

    def restart(self) -> float:
        from pgserver._commands import pg_ctl

        start = time.perf_counter()
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.path, user=self.server.system_user)
        return time.perf_counter() - start

    def close(self) -> None:
        self.server.cleanup()


def run_scenario(name: str, args, database_url: str, postgres: EmbeddedPostgres | None):
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
        "LOG_LEVEL": "ERROR",  # not a line per 404 or 503
    }
    server = subprocess.Popen(
        [str(REPO / ".venv/bin/gunicorn"), "rlhf_platform.wsgi", "--bind",
         f"127.0.0.1:{args.port}", "--workers", str(args.workers), "--worker-class", "gthread",
         "--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning"],
        cwd=REPO, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{args.port}"
    restart_seconds = None
    try:
        wait_for_server(args.port)
        asyncio.run(floor(url, 4 * args.workers, 10))  # every worker imported and connected
        if name == "floor":
            stats, elapsed = asyncio.run(floor(url, args.annotators, 2 * args.rounds))
            return {
                "scenario": name,
                "requests_per_second": len(stats["call"]) / elapsed,
                "call_ms": {q: 1000 * percentile(stats["call"], q) for q in (50, 95, 99)},
                "errors": len(stats["errors"]),
            }

        async def load():
            nonlocal restart_seconds
            job = drive(
                url,
                tokens,
                args.rounds,
                combined=name == "combined",
                rate=args.rate if name == "paced" else None,
            )
            if postgres is None or args.restart_postgres_after is None:
                return await job
            task = asyncio.ensure_future(job)
            await asyncio.sleep(args.restart_postgres_after)
            restart_seconds = await asyncio.to_thread(postgres.restart)
            return await task

        stats, elapsed = asyncio.run(load())
    finally:
        server.terminate()
        server.wait(timeout=20)
    calls = len(stats["next"]) + len(stats["judgement"])
    return {
        "scenario": name,
        "seconds": elapsed,
        "judgements_per_second": len(stats["acknowledged"]) / elapsed,
        "requests_per_second": calls / elapsed,
        "next_ms": {q: 1000 * percentile(stats["next"], q) for q in (50, 95, 99)},
        "judgement_ms": {q: 1000 * percentile(stats["judgement"], q) for q in (50, 95, 99)},
        "errors": len(stats["errors"]),
        "server_errors": sum(1 for _, code in stats["errors"] if code >= 500),
        "error_codes": sorted({f"{kind} {code}" for kind, code in stats["errors"]}),
        "client_retries": stats["retries"],
        "answered_503": stats["unavailable"],
        "postgres_restart_seconds": restart_seconds,
        **check_database(stats),
    }


ROWS = [
    ("requests_per_second", "requests/s"),
    ("judgements_per_second", "judgements/s"),
    ("next_ms.50", "next p50 (ms)"),
    ("next_ms.95", "next p95 (ms)"),
    ("next_ms.99", "next p99 (ms)"),
    ("judgement_ms.50", "judgement p50 (ms)"),
    ("judgement_ms.95", "judgement p95 (ms)"),
    ("judgement_ms.99", "judgement p99 (ms)"),
    ("call_ms.50", "no-op call p50 (ms)"),
    ("call_ms.99", "no-op call p99 (ms)"),
    ("errors", "errors"),
    ("server_errors", "server errors (5xx)"),
    ("answered_503", "503 answers (retried)"),
    ("client_retries", "dropped connections (retried)"),
    ("postgres_restart_seconds", "PostgreSQL restart (s)"),
    ("acknowledged", "acknowledged"),
    ("stored", "stored"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("over_assigned", "over-assigned"),
]


def print_table(results: list[dict]) -> None:
    def cell(result, key):
        value = result
        for part in key.split("."):
            value = value.get(int(part) if part.isdigit() else part) if value else None
        if value is None:
            return "–"
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    print(f"{'':<30}" + "".join(f"{r['scenario']:>12}" for r in results))
    for key, label in ROWS:
        cells = [cell(r, key) for r in results]
        if any(c != "–" for c in cells):
            print(f"{label:<30}" + "".join(f"{c:>12}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20, help="next → judge per annotator")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database", default="rlhf_load")
    parser.add_argument(
        "--scenarios",
        default="floor,separate,combined,paced",
        help="comma-separated: floor, separate, combined, paced",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=40.0,
        help="judgements/s offered in the paced scenario (next, then judge, on a schedule)",
    )
    parser.add_argument(
        "--restart-postgres-after",
        type=float,
        metavar="SECONDS",
        help="use an embedded PostgreSQL and restart it this long into the load",
    )
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    if unknown := set(scenarios) - {"floor", "separate", "combined", "paced"}:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    postgres = EmbeddedPostgres() if args.restart_postgres_after is not None else None
    try:
        base = postgres.url if postgres else os.environ.get("DATABASE_URL", "")
        base = base or "postgresql://postgres@127.0.0.1:5432/postgres"
        database_url = base.rpartition("/")[0] + "/" + args.database
        results = [run_scenario(name, args, database_url, postgres) for name in scenarios]
    finally:
        if postgres:
            postgres.close()
    print_table(results)
    report = {
        "annotators": args.annotators,
        "rounds": args.rounds,
        "gunicorn_workers": args.workers,
        "gunicorn_threads": args.threads,
        "cpus": os.cpu_count(),
        "restart_postgres_after": args.restart_postgres_after,
        "paced_rate": args.rate,
        "scenarios": results,
    }
    name = "labeling_load_restart.json" if postgres else "labeling_load.json"
    out = REPO / "benchmarks/results" / name
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
