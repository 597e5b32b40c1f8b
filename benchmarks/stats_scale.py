"""Project statistics at scale: GET /api/projects/{slug}/stats/ at 100k and 1M judgements.

Seeds, in a fresh PostgreSQL database, one project per size (pairs, overlap 3, 40
annotators of whom every tenth is careless, 20 gold comparisons that everyone judges, ties
and skips), written by INSERT ... SELECT generate_series, then VACUUM ANALYZE (as autovacuum
leaves a table in service). For each size it times the statistics (agreement included) in
this process, cold (the cache emptied before each call) and warm, median of several calls;
then, against gunicorn with the production settings (4 workers x 4 threads, as the Docker
image runs it), the latency of another annotator's next (-> judge, in a small project)
while 8 cold stats calls of the project run at once, beside the same latency with nothing
else running. Prints a table and writes benchmarks/results/stats_scale.json, under
--label (a run of another checkout, --label before, adds its figures beside these).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/stats_scale.py

The database named by --database (default rlhf_stats_scale) on DATABASE_URL's server is
dropped and created again; the cache is the broker's Redis (CACHE_URL), whose cached stats
are removed before each cold call.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "stats_scale.json"
SECRET_KEY = "stats-scale-secret-key-" + "0123456789abcdef" * 3
ANNOTATORS = 40
OVERLAP = 3
GOLD_COMPARISONS = 20
SIDE_COMPARISONS = 20_000  # what the other annotator judges, over several runs
THINK_S = 0.05  # between that annotator's judgement and their next


# --- set-up --------------------------------------------------------------------------------------
def fresh_database(database_url: str) -> None:
    import psycopg

    admin_url, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DEBUG", "1")  # this process only seeds and measures
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_annotators() -> list:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    return [User.objects.create_user(f"annotator{i:02d}") for i in range(ANNOTATORS)]


# One project's comparisons, their items and judgements, written by the database itself.
# Comparison i has items (a, b) = (2i, 2i + 1) past the item base; a is better with
# probability 0.6. Its OVERLAP judges are three distinct annotators drawn at random
# (f, f + d1, f + d1 + d2 mod 40 with d1, d2 in 1..19: every pair of the 40 meets); a
# careful annotator answers the better item 72% of the time, the other 15%, tie 8%, skip
# 5%; every tenth annotator is careless (u drawn from [0.3, 1): 60% right). Each judgement
# sees the items in a random order. The gold comparisons come last and every annotator
# judges them. Statements run one by one, in order (random() follows setseed).
_SEED_SQL = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO labeling_item (id, project_id, prompt, text, clip, poster, payload, data,
                               created_at)
    SELECT %(item_base)s + g, %(project)s, 'prompt ' || g / 2, 'response ' || g, '', '', '',
           '{}', now()
    FROM generate_series(0, 2 * %(comparisons)s - 1) g
    """,
    """
    INSERT INTO labeling_comparison (id, project_id, status, gold_ranking, judgement_count,
                                     open_leases, data, import_key, created_at)
    SELECT %(comparison_base)s + i, %(project)s, 'complete',
           CASE WHEN i >= %(plain)s
                THEN jsonb_build_array(%(item_base)s + 2 * i, %(item_base)s + 2 * i + 1) END,
           0, 0, '{}', '', now()
    FROM generate_series(0, %(comparisons)s - 1) i
    """,
    """
    INSERT INTO labeling_comparisonitem (comparison_id, item_id, position)
    SELECT %(comparison_base)s + i, %(item_base)s + 2 * i + k, k
    FROM generate_series(0, %(comparisons)s - 1) i, generate_series(0, 1) k
    """,
    """
    CREATE TEMPORARY TABLE seeded_comparisons AS
    SELECT i, random() < 0.6 AS better_is_a, floor(random() * 40)::int AS first,
           1 + floor(random() * 19)::int AS d1, 1 + floor(random() * 19)::int AS d2
    FROM generate_series(0, %(comparisons)s - 1) i
    """,
    """
    CREATE TEMPORARY TABLE seeded_answers AS
    SELECT %(comparison_base)s + c.i AS comparison_id,
           (%(annotators)s::bigint[])[w.annotator_index + 1] AS annotator,
           %(item_base)s + 2 * c.i AS a, %(item_base)s + 2 * c.i + 1 AS b, c.better_is_a,
           random() < 0.5 AS a_shown_left,
           CASE WHEN w.annotator_index %% 10 = 0 THEN 0.3 + random() * 0.7
                ELSE random() END AS u
    FROM seeded_comparisons c
    JOIN (SELECT i, (first + (r >= 1)::int * d1 + (r >= 2)::int * d2) %% 40 AS annotator_index
          FROM seeded_comparisons, generate_series(0, 2) r WHERE i < %(plain)s
          UNION ALL
          SELECT i, x FROM generate_series(%(plain)s, %(comparisons)s - 1) i,
                           generate_series(0, 39) x) w ON w.i = c.i
    ORDER BY c.i, w.annotator_index
    """,
    """
    INSERT INTO labeling_judgement (project_id, comparison_id, annotator_id, choice, ranking,
                                    shown_order, source, created_at)
    SELECT %(project)s, comparison_id, annotator,
           CASE WHEN u >= 0.95 THEN 'skip' WHEN u >= 0.87 THEN 'tie'
                WHEN ((u < 0.72) = better_is_a) = a_shown_left THEN 'left'
                ELSE 'right' END,
           CASE WHEN u >= 0.87 THEN NULL
                WHEN (u < 0.72) = better_is_a THEN jsonb_build_array(a, b)
                ELSE jsonb_build_array(b, a) END,
           CASE WHEN a_shown_left THEN jsonb_build_array(a, b) ELSE jsonb_build_array(b, a) END,
           'annotator', now()
    FROM seeded_answers ORDER BY comparison_id, annotator
    """,
    """
    UPDATE labeling_comparison c SET judgement_count = n.n
    FROM (SELECT comparison_id, count(*) AS n FROM seeded_answers WHERE u < 0.95
          GROUP BY comparison_id) n
    WHERE c.id = n.comparison_id AND c.gold_ranking IS NULL
    """,
    "DROP TABLE seeded_comparisons, seeded_answers",
]


def seed_project(*, slug: str, judgements: int, annotators: list) -> dict:
    """A project with about ``judgements`` judgements (exactly, but for rounding to whole
    comparisons), written in a few statements; returns its size."""
    from django.db import connection

    from labeling import services

    project = services.create_project(slug=slug, name=slug, overlap=OVERLAP, round_size=10**9)
    for user in annotators:
        services.add_member(project=project, user=user)
    plain = (judgements - GOLD_COMPARISONS * ANNOTATORS) // OVERLAP
    comparisons = plain + GOLD_COMPARISONS
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM labeling_item")
        (item_base,) = cursor.fetchone()
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM labeling_comparison")
        (comparison_base,) = cursor.fetchone()
        params = {
            "project": project.pk,
            "plain": plain,
            "comparisons": comparisons,
            "item_base": item_base,
            "comparison_base": comparison_base,
            "annotators": [user.pk for user in annotators],
        }
        for statement in _SEED_SQL:
            cursor.execute(statement, params)
        for table in ("labeling_item", "labeling_comparison"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        # planner statistics and the visibility map, as autovacuum keeps them in service
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "SELECT count(*) FROM labeling_judgement WHERE project_id = %s", [project.pk]
        )
        (stored,) = cursor.fetchone()
    return {
        "slug": slug,
        "project_id": project.pk,
        "judgements": stored,
        "comparisons": comparisons,
        "seed_seconds": time.perf_counter() - start,
    }


def seed_side_project(annotator_count: int = 2) -> tuple[str, list]:
    """A small project of open pairs that other annotators judge while the stats run."""
    from django.contrib.auth import get_user_model

    from labeling import imports, services

    staff = get_user_model().objects.create_user("bench-staff", is_staff=True)
    project = services.create_project(slug="side", name="Side", overlap=1, round_size=10**9)
    lines = [
        json.dumps({"prompt": f"side {i}", "responses": [f"a {i}", f"b {i}"]})
        for i in range(SIDE_COMPARISONS)
    ]
    imports.import_jsonl(project=project, data="\n".join(lines).encode(), importer=staff)
    others = []
    for i in range(annotator_count):
        user = get_user_model().objects.create_user(f"side{i}")
        services.add_member(project=project, user=user)
        others.append(user)
    return project.slug, others


def existing_world() -> dict | None:
    """The projects a previous run seeded in this database (--reuse-database)."""
    from django.db import connection

    from labeling.models import Project

    sizes = {}
    for project in Project.objects.filter(slug__startswith="stats-"):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(DISTINCT comparison_id) FROM labeling_judgement "
                "WHERE project_id = %s",
                [project.pk],
            )
            judgements, comparisons = cursor.fetchone()
        sizes[project.slug] = {
            "slug": project.slug,
            "project_id": project.pk,
            "judgements": judgements,
            "comparisons": comparisons,
            "seed_seconds": None,
        }
    return sizes or None


# --- measuring ------------------------------------------------------------------------------------
def forget_cached_stats() -> None:
    """Every cached statistics answer, in the shared cache (as a cold call finds it)."""
    from django.core.cache import cache

    client = getattr(cache, "_cache", None)
    if client is None or not hasattr(client, "get_client"):
        cache.clear()
        return
    redis = client.get_client(None, write=True)
    for key in redis.scan_iter(match="*project-stats*"):
        redis.delete(key)


def time_in_process(slug: str, *, cold_repeats: int, warm_repeats: int) -> dict:
    """The statistics in this process: cold (the cache emptied before each call) and warm."""
    from django.contrib.auth import get_user_model

    from labeling import stats
    from labeling.models import Project

    project = Project.objects.get(slug=slug)
    staff = get_user_model().objects.get(username="bench-staff")
    cold = []
    for _ in range(cold_repeats):
        forget_cached_stats()
        start = time.perf_counter()
        answer = stats.project_stats(project, for_user=staff)
        cold.append(time.perf_counter() - start)
    warm = []
    for _ in range(warm_repeats):
        start = time.perf_counter()
        stats.project_stats(project, for_user=staff)
        warm.append(time.perf_counter() - start)
    found = answer.get("agreement") or {}
    return {
        "cold_s": _summary(cold),
        "warm_ms": {k: v if k == "n" else 1000 * v for k, v in _summary(warm).items()},
        "agreement": {
            key: found.get(key)
            for key in ("fleiss_kappa", "fleiss_kappa_ci", "krippendorff_alpha",
                        "krippendorff_alpha_ci", "alpha_level", "comparisons")
        } if found else None,
        "pairs": len(found.get("cohen_kappa") or {}) if found else None,
    }  # fmt: skip


def _summary(seconds: list[float]) -> dict:
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "n": len(seconds),
    }


class Server:
    """gunicorn with the production settings (DEBUG off), as the Docker image runs it."""

    def __init__(self, database_url: str, port: int, workers: int, threads: int):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "CRITICAL",
        }
        self.process = subprocess.Popen(
            [str(REPO / ".venv/bin/gunicorn"), "rlhf_platform.wsgi", "--bind",
             f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "gthread",
             "--threads", str(threads), "--timeout", "300", "--log-level", "critical"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> None:
        import httpx

        for _ in range(300):
            try:
                httpx.get(f"{self.url}/accounts/login/", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def _token(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


def next_latencies(server: Server, token: str, side: str, *, until, at_least: int) -> list:
    """Seconds of each next (then a judgement) of one annotator, until ``until()`` is true
    and at least ``at_least`` were made."""
    import httpx

    seconds = []
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        while len(seconds) < at_least or not until():
            start = time.perf_counter()
            lease = client.post(f"/api/projects/{side}/next/")
            seconds.append(time.perf_counter() - start)
            if lease.status_code != 200:
                raise RuntimeError(f"next answered {lease.status_code}: {lease.text[:200]}")
            client.post(
                f"/api/comparisons/{lease.json()['id']}/judgement/", json={"choice": "left"}
            )
            time.sleep(THINK_S)
    return seconds


def warm_up(server: Server, *, staff_token: str, side_token: str, side: str) -> None:
    """Every worker thread past its first request (imports, connections) before timing."""
    import httpx

    def call(_):
        with httpx.Client(base_url=server.url, timeout=120,
                          headers={"Authorization": f"Token {staff_token}"}) as client:  # fmt: skip
            client.get(f"/api/projects/{side}/stats/")

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(call, range(64)))
    next_latencies(server, side_token, side, until=lambda: True, at_least=10)


def under_load(server: Server, *, slug: str, side: str, staff_token: str, side_token: str,
               callers: int, rounds: int) -> dict:  # fmt: skip
    """Another annotator's next while ``callers`` cold stats calls of ``slug`` run at
    once (``rounds`` times, the cache emptied before each), beside the same with nothing
    else running."""
    import httpx

    quiet = next_latencies(server, side_token, side, until=lambda: True, at_least=40)

    def stats_call(_):
        with httpx.Client(base_url=server.url, timeout=300,
                          headers={"Authorization": f"Token {staff_token}"}) as client:  # fmt: skip
            start = time.perf_counter()
            answer = client.get(f"/api/projects/{slug}/stats/")
            return answer.status_code, time.perf_counter() - start

    during, calls = [], []
    for _ in range(rounds):
        forget_cached_stats()
        with concurrent.futures.ThreadPoolExecutor(callers) as pool:
            started = time.perf_counter()
            futures = [pool.submit(stats_call, i) for i in range(callers)]
            during += next_latencies(
                server, side_token, side,
                until=lambda futures=futures: all(f.done() for f in futures), at_least=5,
            )  # fmt: skip
            calls += [f.result() for f in futures]
        calls_wall = time.perf_counter() - started
    codes = sorted({code for code, _ in calls})
    return {
        "stats_callers": callers,
        "rounds": rounds,
        "stats_codes": codes,
        "stats_call_s": _summary([s for _, s in calls]),
        "last_round_wall_s": calls_wall,
        "next_quiet_ms": _percentiles(quiet),
        "next_during_ms": _percentiles(during),
    }


def _percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def at(q):
        return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    return {"p50": at(50), "p95": at(95), "max": 1000 * ordered[-1], "n": len(ordered)}


# --- the report -------------------------------------------------------------------------------
ROWS = [
    ("judgements", "judgements", "{:,}"),
    ("in_process.cold_s.median", "stats cold, median (s)", "{:.3f}"),
    ("in_process.cold_s.min", "stats cold, best (s)", "{:.3f}"),
    ("in_process.cold_s.max", "stats cold, worst (s)", "{:.3f}"),
    ("in_process.warm_ms.median", "stats warm, median (ms)", "{:.2f}"),
    ("server.stats_call_s.median", "8 cold calls at once: each, median (s)", "{:.2f}"),
    ("server.stats_call_s.max", "8 cold calls at once: slowest (s)", "{:.2f}"),
    ("server.next_quiet_ms.p50", "other's next alone: p50 (ms)", "{:.1f}"),
    ("server.next_quiet_ms.p95", "other's next alone: p95 (ms)", "{:.1f}"),
    ("server.next_during_ms.p50", "other's next during: p50 (ms)", "{:.1f}"),
    ("server.next_during_ms.p95", "other's next during: p95 (ms)", "{:.1f}"),
    ("server.next_during_ms.max", "other's next during: worst (ms)", "{:.1f}"),
    ("in_process.agreement.fleiss_kappa", "Fleiss' kappa", "{:.4f}"),
    ("in_process.agreement.krippendorff_alpha", "Krippendorff's alpha", "{:.4f}"),
    ("in_process.pairs", "annotator pairs (Cohen's kappa)", "{}"),
]


def print_table(results: list[dict]) -> None:
    def cell(result, key, fmt):
        value = result
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return "–" if value is None else fmt.format(value)

    print(f"{'':<42}" + "".join(f"{r['label'] + ' ' + r['size']:>18}" for r in results))
    for key, label, fmt in ROWS:
        print(f"{label:<42}" + "".join(f"{cell(r, key, fmt):>18}" for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="rlhf_stats_scale")
    parser.add_argument("--sizes", default="100000,1000000", help="judgements per project")
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--warm-repeats", type=int, default=20)
    parser.add_argument("--callers", type=int, default=8, help="cold stats calls at once")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of those calls")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8781)
    parser.add_argument("--label", default="after", help="this run's name in the JSON")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse-database", action="store_true",
        help="measure the projects a previous run seeded (no drop, no seeding)",
    )  # fmt: skip
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    database_url = base.rpartition("/")[0] + "/" + args.database
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.reuse_database:
        os.environ["DATABASE_URL"] = database_url
        os.environ.setdefault("DEBUG", "1")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
        import logging

        import django

        django.setup()
        logging.getLogger("httpx").setLevel(logging.WARNING)
        seeded = existing_world()
        if seeded is None:
            raise SystemExit(f"Nothing seeded in {args.database}; run without --reuse-database.")
    else:
        fresh_database(database_url)
        annotators = create_annotators()
        seed_side_project()
        seeded = {}
        for size in sizes:
            slug = f"stats-{size}"
            seeded[slug] = seed_project(slug=slug, judgements=size, annotators=annotators)
            print(f"seeded {slug}: {seeded[slug]}", flush=True)
    from django.contrib.auth import get_user_model

    User = get_user_model()
    staff_token = _token(User.objects.get(username="bench-staff"))
    side_token = _token(User.objects.get(username="side0"))
    results = []
    server = Server(database_url, args.port, args.workers, args.threads)
    try:
        server.wait()
        warm_up(server, staff_token=staff_token, side_token=side_token, side="side")
        for size in sizes:
            slug = f"stats-{size}"
            row = {
                "label": args.label,
                "size": f"{size // 1000}k" if size < 10**6 else f"{size // 10**6}M",
                "slug": slug,
                "judgements": seeded[slug]["judgements"],
                "comparisons": seeded[slug]["comparisons"],
                "seed_seconds": seeded[slug]["seed_seconds"],
                "load_average_before": os.getloadavg(),
            }
            row["in_process"] = time_in_process(
                slug, cold_repeats=args.cold_repeats, warm_repeats=args.warm_repeats
            )
            row["server"] = under_load(
                server, slug=slug, side="side", staff_token=staff_token,
                side_token=side_token, callers=args.callers, rounds=args.rounds,
            )  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    finally:
        server.stop()
    print_table(results)
    stored = json.loads(args.results.read_text()) if args.results.exists() else {}
    stored.setdefault("runs", {})[args.label] = results
    stored["machine"] = {"cpus": os.cpu_count()}
    stored["server"] = f"gunicorn {args.workers} workers x {args.threads} threads, DEBUG off"
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
