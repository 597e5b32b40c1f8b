"""Bring the whole platform up on this machine: check the port, migrate, seed the demo,
start the web server, a Celery worker and Celery beat, queue the demo language model's
build, print the URL and logins once the web server answers, and wait."""

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from demo import lm_build
from demo.accounts import DEMO_USERS
from demo.tasks import build_demo_lm
from labeling.models import Comparison, Project
from training import services

WEB_START_TIMEOUT_S = 120


def check_port_free(host: str, port: int) -> None:
    """Raise CommandError, naming PORT, when something already listens on host:port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(
            f"Cannot resolve host {host!r} ({exc}); set HOST to an address."
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(
                f"Port {port} on {host} is taken ({exc.strerror}). Stop what listens there, "
                f"or choose another port: PORT={port + 1} make run"
            ) from None


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = "Run web (gunicorn), worker and beat together, on embedded servers if no URLs are set."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=3)
        parser.add_argument("--no-seed", action="store_true", help="Do not create demo data.")

    def handle(self, *args, host, port, web_workers, no_seed, **options):
        check_port_free(host, port)  # before minutes of work that would end in a bind error
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        if not no_seed:
            call_command("seed_demo")
        env = {**os.environ}  # carries the embedded DATABASE_URL / CELERY_BROKER_URL
        bin_dir = os.path.dirname(sys.executable)
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        commands = {
            "web": [
                os.path.join(bin_dir, "gunicorn"),
                "rlhf_platform.wsgi",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(web_workers),
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
            "worker": [
                os.path.join(bin_dir, "celery"),
                "-A",
                "rlhf_platform",
                "worker",
                "-Q",
                "default,train,render",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
            ],
            "beat": [
                os.path.join(bin_dir, "celery"),
                "-A",
                "rlhf_platform",
                "beat",
                "--schedule",
                str(settings.DATA_DIR / "celerybeat-schedule"),
                "--loglevel",
                "INFO",
            ],
        }
        children = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        try:
            self._wait_for_web(host, port, children)
            if not no_seed:
                self._first_comparisons()
                self._build_demo_lm()
            self._announce(host, port)
            self._supervise(children)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()

    def _wait_for_web(self, host: str, port: int, children: dict) -> None:
        deadline = time.monotonic() + WEB_START_TIMEOUT_S
        while not answers(host, port):
            for name, child in children.items():
                if child.poll() is not None:
                    raise CommandError(f"The {name} process exited ({child.returncode}) on start.")
            if time.monotonic() > deadline:
                raise CommandError(f"The web server did not answer on {host}:{port} in time.")
            time.sleep(0.2)

    def _build_demo_lm(self) -> None:
        if lm_build.is_built():
            return
        lm_build.write_status(lm_build.BuildStatus(lm_build.State.QUEUED))
        build_demo_lm.apply_async(queue=settings.CELERY_QUEUE_PREFIX + "train")
        self.stdout.write(
            "  The demo language model is being built on the worker (a few minutes; its "
            "progress is on the home page); demo-lm appears when it is ready."
        )

    def _announce(self, host: str, port: int) -> None:
        url = f"http://{host}:{port}/"
        logins = ", ".join(f"{u} / {p}" for u, p, _ in DEMO_USERS)
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  The platform is up at {url}\n"
                f"  Annotator pages: {url}label/demo-text/  {url}label/demo-lm/  "
                f"{url}label/demo-pendulum/  {url}label/demo-chat/\n"
                f"  Admin: {url}admin/   Dashboard: {url}projects/demo-pendulum/dashboard/   "
                f"API docs: {url}api/docs/\n"
                f"  Logins (user / password): {logins}\n"
                f"  Database: {settings.DATABASES['default']['HOST'] or 'embedded'}   "
                f"Broker: {settings.CELERY_BROKER_URL}\n"
                "  Press Ctrl-C to stop.\n"
            )
        )

    def _supervise(self, children: dict) -> None:
        """Wait for Ctrl-C (exit 0) or for a child to die (CommandError: exit 1)."""
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    raise CommandError(f"The {name} process exited ({child.returncode}).")
            time.sleep(0.5)

    def _first_comparisons(self) -> None:
        """A fresh demo project that trains has nothing to judge yet: its first round
        (which only rolls out or samples from the initial policy) is queued."""
        for project in Project.objects.filter(slug__in=["demo-pendulum", "demo-lm"]):
            if Comparison.objects.filter(project=project).exists():
                continue
            try:
                services.start_round(project=project, trigger="seed")
            except DomainError:
                continue  # a round is already on its way
            self.stdout.write(f"  Making the first comparisons of {project.slug} (round 1)...")
