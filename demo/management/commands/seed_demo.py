"""Create the demo accounts and projects. Running it again changes nothing."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from demo import lm_build
from demo.accounts import DEMO_USERS
from labeling import imports, services
from labeling.models import Project

DEMO_TEXT_FILE = Path(settings.BASE_DIR) / "demo" / "text_demo.jsonl"
DEMO_CHAT_FILE = Path(settings.BASE_DIR) / "demo" / "chat_demo.jsonl"
CHAT_INSTRUCTIONS = """\
Read the conversation, then pick the **better next assistant turn**.

* Say how much better it is with **↑** / **↓**, and rate both on each criterion
  (**Shift+1**…**Shift+7**).
* **e** lets you improve the winner's text; **c** adds a note; **b** says both are bad.
"""
# The feedback form of demo-chat: every part offered, none required.
CHAT_CONFIG = {
    "feedback": {
        "strength": "optional",
        "ratings": "optional",
        "critique": "optional",
        "edit": "optional",
        "both_bad": True,
    },
    "criteria": [{"name": "helpful", "weight": 1.0}, {"name": "honest", "weight": 1.0}],
}
PENDULUM_INSTRUCTIONS = """\
Each clip shows a pendulum for two seconds. Pick the clip in which the pendulum is
**closer to standing straight up, and steadier**. Tie (**3**) when you cannot tell.
"""
PENDULUM_CONFIG = {
    "env_id": "Pendulum-v1",
    "segment_length": 50,  # 50 frames at 25 fps: two-second clips, long enough to judge
    "fps": 25,
    "algorithm": "ppo",
    "env_steps_per_round": 8192,
    "comparisons_per_round": 16,
    "selection": "disagreement",
    "ensemble_size": 3,
    "render_clips": True,
}
DEMO_INSTRUCTIONS = """\
Pick the response that is **more helpful, correct and kind**.

* Prefer answers that are accurate and specific.
* Press **3** (tie) when both are equally good or equally bad, **s** to skip.
* For three or more responses, rank them best first.
"""


class Command(BaseCommand):
    help = (
        "Create the demo accounts and projects (demo-text, demo-pendulum, demo-chat; demo-lm "
        "once its model is built). Running it again changes nothing."
    )

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError(
                "The demo accounts (admin / admin, annotator / annotator) are for a "
                "development machine: seed_demo runs only with DEBUG=1."
            )
        User = get_user_model()
        with transaction.atomic():
            users = {}
            for username, password, is_staff in DEMO_USERS:
                user, created = User.objects.get_or_create(
                    username=username, defaults={"is_staff": is_staff, "is_superuser": is_staff}
                )
                if created:
                    user.set_password(password)
                    user.save()
                users[username] = user
            admin = users["admin"]
            project = self._project(
                admin,
                DEMO_TEXT_FILE,
                slug="demo-text",
                name="Demo: which response is better?",
                kind=Project.Kind.TEXT,
                instructions=DEMO_INSTRUCTIONS,
                overlap=2,
                round_size=20,
            )
            pendulum = self._project(
                admin,
                None,
                slug="demo-pendulum",
                name="Demo: which pendulum is closer to upright?",
                kind=Project.Kind.TRAJECTORY,
                instructions=PENDULUM_INSTRUCTIONS,
                overlap=1,
                round_size=16,
                config=PENDULUM_CONFIG,
            )
            chat = self._project(
                admin,
                DEMO_CHAT_FILE,
                slug="demo-chat",
                name="Demo: the better next turn of a conversation",
                kind=Project.Kind.TEXT,
                instructions=CHAT_INSTRUCTIONS,
                overlap=1,
                round_size=20,
                config=CHAT_CONFIG,
            )
            demo_projects = [project, pendulum, chat]
            for user in users.values():
                for demo in demo_projects:
                    services.add_member(project=demo, user=user)
        if lm_build.is_built():
            lm_build.ensure_project()
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))

    def _project(self, importer, lines: Path | None, *, slug: str, **fields) -> Project:
        """The demo project ``slug``; made with ``fields`` and the JSONL file ``lines``
        imported when it does not exist yet."""
        project = Project.objects.filter(slug=slug).first()
        if project is not None:
            return project
        project = services.create_project(slug=slug, **fields)
        if lines is not None:
            result = imports.import_jsonl(
                project=project, data=lines.read_bytes(), importer=importer
            )
            self.stdout.write(
                f"{slug}: {result.created_comparisons} comparisons, "
                f"{result.created_items} items, "
                f"{result.skipped_duplicates} duplicate lines skipped"
            )
        return project
