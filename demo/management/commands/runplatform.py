"""Bring the whole platform up on this machine: migrate, seed the demo, start the web
server, a Celery worker and Celery beat, print the URL and logins, and wait."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from core.errors import DomainError
from demo.management.commands.seed_demo import DEMO_USERS
from labeling.models import Comparison, Project
from training import services


class Command(BaseCommand):
    help = "Run web (gunicorn), worker and beat together, on embedded servers if no URLs are set."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=3)
        parser.add_argument("--no-seed", action="store_true", help="Do not create demo data.")

    def handle(self, *args, host, port, web_workers, no_seed, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        if not no_seed:
            call_command("build_demo_lm")  # a few minutes the first time, then cached
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
        if not no_seed:
            self._first_comparisons()
        url = f"http://{host}:{port}/"
        logins = ", ".join(f"{u} / {p}" for u, p, _ in DEMO_USERS)
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  The platform is up at {url}\n"
                f"  Annotator pages: {url}label/demo-text/  {url}label/demo-lm/  "
                f"{url}label/demo-pendulum/\n"
                f"  Admin: {url}admin/   Dashboard: {url}projects/demo-pendulum/dashboard/   "
                f"API docs: {url}api/docs/\n"
                f"  Logins (user / password): {logins}\n"
                f"  Database: {settings.DATABASES['default']['HOST'] or 'embedded'}   "
                f"Broker: {settings.CELERY_BROKER_URL}\n"
                "  Press Ctrl-C to stop.\n"
            )
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited ({child.returncode}); stopping.")
                        stopping = True
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()

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
