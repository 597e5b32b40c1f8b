"""The security review's probes, replayed against the production server.

Starts gunicorn (DEBUG off, 2 workers) on loopback against a fresh PostgreSQL database,
seeds a few projects, and sends what the review sent: a 20 MB anonymous body, guesses
with forged X-Forwarded-For, an answer against a stale order, an annotator looking for
gold in their stats, stats hammered while another annotator works, items deleted under a
project, bad input of every kind, a step whose claim was taken over, and the deployment
defaults. Prints each probe with its result, writes benchmarks/results/security_probes.json
and exits non-zero if any probe fails.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/security_probes.py
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PASSWORD = "a long and private passphrase"
SECRET_KEY = "security-probes-secret-key-" + "0123456789abcdef" * 3
RESULTS = REPO / "benchmarks" / "results" / "security_probes.json"


# --- set-up --------------------------------------------------------------------------------------
def fresh_database(database_url: str) -> None:
    import psycopg

    admin_url, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DEBUG", "1")  # this process only seeds and checks rows
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed() -> dict:
    """The review's world: staff, two annotators, a text project, a gold-only project and a
    project with 20 000 judgements; API tokens for all."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from labeling import services
    from labeling.models import Comparison, ComparisonItem, Item, Judgement

    User = get_user_model()
    staff = User.objects.create_superuser("boss", "boss@example.org", PASSWORD)
    ann, bob = (User.objects.create_user(name, password=PASSWORD) for name in ("ann", "bob"))
    office = [User.objects.create_user(f"office{i:02d}", password=PASSWORD) for i in range(30)]
    text = services.create_project(slug="probe", name="Probe", round_size=10**9)
    gold = services.create_project(slug="gold", name="Gold", gold_rate=1.0, round_size=10**9)
    bulk = services.create_project(slug="bulk", name="Bulk", round_size=10**9)
    for project in (text, gold, bulk):
        for user in (ann, bob, *office):
            services.add_member(project=project, user=user)
    for i in range(6):
        items = [Item.objects.create(project=text, prompt=f"p{i}", text=t) for t in "ab"]
        services.create_comparison(project=text, items=items)
    for i in range(2):
        items = [Item.objects.create(project=gold, prompt=f"g{i}", text=t) for t in "ab"]
        services.create_comparison(project=gold, items=items, gold_ranking=[items[0].pk])

    annotators = [User.objects.create_user(f"bulk{i}") for i in range(10)]
    items = Item.objects.bulk_create(
        Item(project=bulk, prompt=f"q{i // 2}", text=f"r{i}") for i in range(4000)
    )
    comparisons = Comparison.objects.bulk_create(
        Comparison(project=bulk, status=Comparison.Status.COMPLETE, judgement_count=10)
        for _ in range(2000)
    )
    ComparisonItem.objects.bulk_create(
        ComparisonItem(comparison=c, item=items[2 * n + k], position=k)
        for n, c in enumerate(comparisons)
        for k in range(2)
    )
    Judgement.objects.bulk_create(
        Judgement(
            project=bulk,
            comparison=c,
            annotator=a,
            choice="left",
            ranking=[items[2 * n].pk, items[2 * n + 1].pk],
            shown_order=[items[2 * n].pk, items[2 * n + 1].pk],
        )
        for n, c in enumerate(comparisons)
        for a in annotators
    )
    tokens = {u.username: Token.objects.create(user=u).key for u in (staff, ann, bob)}
    forget_failed_sign_ins()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum keeps them in service
    return {"tokens": tokens, "office": [u.username for u in office]}


def forget_failed_sign_ins() -> None:
    """A run a minute ago left its counters (and cached stats of projects numbered as
    these are) in the shared cache: start from none."""
    from django.core.cache import cache

    client = getattr(cache, "_cache", None)
    if client is None or not hasattr(client, "get_client"):
        cache.clear()  # a per-process cache: nothing shared to forget
        return
    redis = client.get_client(None, write=True)
    for pattern in ("*signin-failures:*", "*project-stats:*"):
        for key in redis.scan_iter(match=pattern):
            redis.delete(key)


class Server:
    """gunicorn with the production settings, and its workers' memory."""

    def __init__(self, database_url: str, port: int):
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
             f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread",
             "--threads", "4", "--log-level", "critical"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> None:
        import httpx

        for _ in range(200):
            try:
                httpx.get(f"{self.url}/accounts/login/", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def workers_rss_mb(self) -> float:
        import psutil

        children = psutil.Process(self.process.pid).children()
        return sum(child.memory_info().rss for child in children) / 2**20

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# --- the probes ---------------------------------------------------------------------------
def client(server: Server, token: str | None = None, **headers):
    import httpx

    if token:
        headers["Authorization"] = f"Token {token}"
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def probe_memory(server, world) -> tuple[bool, str]:
    before = server.workers_rss_mb()
    body = b'{"username": "x", "password": "' + b"y" * (20 * 2**20) + b'"}'
    start = time.perf_counter()
    with client(server) as c:
        answer = c.post(
            "/api/auth/token/", content=body, headers={"Content-Type": "application/json"}
        )
    seconds = time.perf_counter() - start
    growth = server.workers_rss_mb() - before
    ok = answer.status_code == 413 and growth < 50
    return ok, f"{answer.status_code} in {seconds:.2f} s; workers' memory {growth:+.0f} MB"


def probe_office(server, world) -> tuple[bool, str]:
    with client(server) as c:
        codes = [
            c.post("/api/auth/token/", json={"username": name, "password": PASSWORD}).status_code
            for name in world["office"]
        ]
    ok = set(codes) == {200}
    return ok, f"{codes.count(200)} of {len(codes)} sign-ins from one address answered 200"


def probe_throttle(server, world) -> tuple[bool, str]:
    codes = []
    for i in range(12):
        with client(server, **{"X-Forwarded-For": f"10.9.0.{i}"}) as c:
            codes.append(
                c.post(
                    "/api/auth/token/", json={"username": "bob", "password": f"g{i}"}
                ).status_code
            )
    with client(server, **{"X-Forwarded-For": "10.9.1.1"}) as c:
        right = c.post("/api/auth/token/", json={"username": "bob", "password": PASSWORD})
    ok = codes[:10] == [400] * 10 and codes[10:] == [429, 429] and right.status_code == 429
    return (
        ok,
        f"guesses from 12 claimed addresses: {codes}; then the right password: {right.status_code}",
    )


def probe_stale_order(server, world) -> tuple[bool, str]:
    from labeling.models import Judgement

    with client(server, world["tokens"]["ann"]) as c:
        lease = c.post("/api/projects/probe/next/").json()
        shown = [item["id"] for item in lease["items"]]
        answer = c.post(
            f"/api/comparisons/{lease['id']}/judgement/",
            json={"choice": "left", "shown_order": shown[::-1]},  # an older tab's order
        )
    stored = Judgement.objects.filter(comparison_id=lease["id"]).count()
    ok = answer.status_code == 409 and stored == 0
    return (
        ok,
        f"{answer.status_code} ({answer.json()['detail'][:60]}…); judgements stored: {stored}",
    )


def probe_gold_oracle(server, world) -> tuple[bool, str]:
    with client(server, world["tokens"]["ann"]) as c:
        lease = c.post("/api/projects/gold/next/").json()
        c.post(f"/api/comparisons/{lease['id']}/judgement/", json={"choice": "left"})
        stats = c.get("/api/projects/gold/stats/").json()
    (row,) = stats["annotators"]
    shown = {key: row[key] for key in ("gold_judged", "gold_accuracy")}
    leaked = {"gold_ranking", "is_gold", "gold"} & {*lease, *(k for i in lease["items"] for k in i)}
    ok = set(shown.values()) == {None} and not leaked
    return ok, f"after judging a gold comparison, the annotator's own row says {shown}"


def probe_slow_stats(server, world) -> tuple[bool, str]:
    with client(server, world["tokens"]["boss"]) as c:
        start = time.perf_counter()
        c.get("/api/projects/bulk/stats/")
        cold = time.perf_counter() - start

    def stats_call(_):
        with client(server, world["tokens"]["bob"]) as c:
            return c.get("/api/projects/bulk/stats/").status_code

    latencies = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        hammering = [pool.submit(stats_call, i) for i in range(32)]
        with client(server, world["tokens"]["ann"]) as c:
            for _ in range(5):
                start = time.perf_counter()
                c.post("/api/projects/probe/next/")
                latencies.append(time.perf_counter() - start)
        codes = {f.result() for f in hammering}
    ok = max(latencies) < 1.0 and codes == {200}
    return ok, (
        f"stats at 20 000 judgements: {cold * 1000:.0f} ms cold; another annotator's next "
        f"under 32 stats calls: worst {max(latencies) * 1000:.0f} ms"
    )


def probe_deleted_items(server, world) -> tuple[bool, str]:
    from labeling.models import Comparison

    comparison = Comparison.objects.filter(project__slug="probe", status="open").last()
    comparison.items.first().delete()  # staff deletes an item in the admin
    codes = []
    with client(server, world["tokens"]["bob"]) as c:
        for _ in range(6):
            answer = c.post("/api/projects/probe/next/")
            codes.append(answer.status_code)
            if answer.status_code != 200:
                break
            c.post(f"/api/comparisons/{answer.json()['id']}/judgement/", json={"choice": "tie"})
    with client(server, world["tokens"]["boss"]) as c:
        exports = [
            c.get(f"/api/projects/probe/export/?format={f}").status_code for f in ("trl", "full")
        ]
    ok = 500 not in codes and exports == [200, 200]
    return ok, f"next: {codes}; exports: {exports}"


def probe_bad_input(server, world) -> tuple[bool, str]:
    staff = world["tokens"]["boss"]
    results = {}
    with client(server, staff) as c:
        results["deep JSON"] = c.post(
            "/api/projects/", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
        ).status_code
        jsonl = {"Content-Type": "application/jsonl"}
        results["5000-digit integer"] = c.post(
            "/api/projects/probe/import/",
            content=b'{"prompt": "p", "responses": ["a", "b"], "n": ' + b"9" * 5000 + b"}",
            headers=jsonl,
        ).status_code
        results["lone surrogate"] = c.post(
            "/api/projects/probe/import/",
            content=b'{"prompt": "\\ud800", "responses": ["a", "b"]}',
            headers=jsonl,
        ).status_code

    def create(_):
        with client(server, staff) as c:
            return c.post("/api/projects/", json={"slug": "race", "name": "Race"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        creates = sorted(pool.map(create, range(8)))
    results["8 parallel creates of one slug"] = creates
    ok = all(
        code == 400 for key, code in results.items() if key != "8 parallel creates of one slug"
    )
    ok = ok and creates.count(201) == 1 and set(creates) <= {201, 400}
    return ok, "; ".join(f"{key}: {code}" for key, code in results.items())


def probe_double_commit(server, world) -> tuple[bool, str]:
    from labeling import services as labeling
    from labeling.models import Item
    from training import services
    from training.models import Run
    from training.steps import StepResult

    project = labeling.create_project(
        slug="claims", name="Claims", kind="trajectory", round_size=10**9,
        config={"env_id": "CartPole-v1", "render_clips": False},
    )  # fmt: skip
    step = services.start_round(project=project, trigger="probe", enqueue=False).steps.get(
        kind=Run.Kind.FIT_REWARD_MODEL
    )

    def writes(text):
        return lambda: Item.objects.create(project=project, text=text)

    def first_attempt(run, progress):
        Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED)  # re-queued meanwhile
        services.execute_step(step_id=run.pk, work=lambda r, p: StepResult({}, writes("second")))
        return StepResult({}, writes("first"))

    try:
        services.execute_step(step_id=step.pk, work=first_attempt)
        lost = False
    except services.ClaimLost:
        lost = True
    texts = list(Item.objects.filter(project=project).values_list("text", flat=True))
    return lost and texts == [
        "second"
    ], f"the taken-over worker lost its claim: {lost}; outputs: {texts}"


def probe_deployment(server, world) -> tuple[bool, str]:
    with client(server, world["tokens"]["ann"]) as c:
        projects = c.get("/api/projects/")
    with client(server) as c:
        login = c.get("/accounts/login/")
    short_key = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DEBUG": "0", "SECRET_KEY": "x", "ALLOWED_HOSTS": "example.org",
             "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings"},
    )  # fmt: skip
    checks = {
        "CSP": "script-src 'self'" in login.headers.get("content-security-policy", ""),
        "API no-store": projects.headers.get("cache-control") == "private, no-store",
        "no config for annotators": all("config" not in p for p in projects.json()),
        "SECRET_KEY=x refused": short_key.returncode != 0,
    }
    return all(checks.values()), "; ".join(
        f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()
    )


PROBES: list[tuple[str, str, Callable]] = [
    ("memory", "a 20 MB anonymous JSON body", probe_memory),
    ("office", "30 sign-ins from one address", probe_office),
    ("throttle bypass", "guesses with forged X-Forwarded-For", probe_throttle),
    ("stale order", "an answer against an older order", probe_stale_order),
    ("gold oracle", "gold in an annotator's own stats", probe_gold_oracle),
    ("slow stats", "stats hammered beside another annotator", probe_slow_stats),
    ("deleted items", "items deleted under a project", probe_deleted_items),
    ("bad input", "deep JSON, long integers, surrogates, racing creates", probe_bad_input),
    ("double commit", "a step whose claim was taken over", probe_double_commit),
    ("deployment", "CSP, Cache-Control, config, short SECRET_KEY", probe_deployment),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--database", default="rlhf_security")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    database_url = base.rpartition("/")[0] + "/" + args.database
    fresh_database(database_url)
    world = seed()
    server = Server(database_url, args.port)
    results = []
    try:
        server.wait()
        for name, what, probe in PROBES:
            try:
                ok, detail = probe(server, world)
            except Exception as exc:  # a probe that crashes is a failed probe, shown
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results.append({"probe": name, "what": what, "passed": ok, "detail": detail})
            print(f"{'PASS' if ok else 'FAIL'}  {name:<15} {what}\n      {detail}", flush=True)
    finally:
        server.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"probes": results}, indent=2) + "\n")
    failed = [r["probe"] for r in results if not r["passed"]]
    print(f"\n{len(results) - len(failed)} of {len(results)} probes passed; {RESULTS}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
