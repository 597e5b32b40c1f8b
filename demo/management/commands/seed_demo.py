"""Create the demo accounts and the demo text project. Running it again changes nothing."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from labeling import imports, services
from labeling.models import Project
from training.ml.lm.demo_lm import read_prompts

DEMO_USERS = [
    # username, password, is_staff
    ("admin", "admin", True),
    ("annotator", "annotator", False),
]
DEMO_TEXT_FILE = Path(settings.BASE_DIR) / "demo" / "text_demo.jsonl"
PENDULUM_INSTRUCTIONS = """\
Each clip shows a pendulum for a second or two. Pick the clip in which the pendulum is
**closer to standing straight up, and steadier**. Tie (**3**) when you cannot tell.
"""
PENDULUM_CONFIG = {
    "env_id": "Pendulum-v1",
    "segment_length": 25,
    "fps": 20,
    "algorithm": "ppo",
    "env_steps_per_round": 8192,
    "comparisons_per_round": 16,
    "selection": "disagreement",
    "ensemble_size": 3,
    "render_clips": True,
}
DEMO_LM_INSTRUCTIONS = """\
These answers were written by a small language model trained on this machine. Pick the
answer that is **more positive and pleasant**; every 16 judgements the model is trained
on your choices (DPO) and writes new answers.
"""
DEMO_INSTRUCTIONS = """\
Pick the response that is **more helpful, correct and kind**.

* Prefer answers that are accurate and specific.
* Press **3** (tie) when both are equally good or equally bad, **s** to skip.
* For three or more responses, rank them best first.
"""


def demo_lm_config(model_dir: Path) -> dict:
    return {
        "model_dir": str(model_dir),
        "prompts": read_prompts(),
        "k": 2,
        "temperature": 1.0,
        "top_p": 0.95,
        "max_new_tokens": 40,
        "algorithm": "dpo",
        "beta": 0.1,
        "comparisons_per_round": 16,
    }


class Command(BaseCommand):
    help = "Create the demo admin and annotator accounts and a demo text project."

    def handle(self, *args, **options):
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
            project = Project.objects.filter(slug="demo-text").first()
            if project is None:
                project = services.create_project(
                    slug="demo-text",
                    name="Demo: which response is better?",
                    kind=Project.Kind.TEXT,
                    instructions=DEMO_INSTRUCTIONS,
                    overlap=2,
                    round_size=20,
                )
                result = imports.import_jsonl(
                    project=project, data=DEMO_TEXT_FILE.read_bytes(), importer=users["admin"]
                )
                self.stdout.write(
                    f"demo-text: {result.created_comparisons} comparisons, "
                    f"{result.created_items} items"
                )
            pendulum = Project.objects.filter(slug="demo-pendulum").first()
            if pendulum is None:
                pendulum = services.create_project(
                    slug="demo-pendulum",
                    name="Demo: which pendulum is closer to upright?",
                    kind=Project.Kind.TRAJECTORY,
                    instructions=PENDULUM_INSTRUCTIONS,
                    overlap=1,
                    round_size=16,
                    config=PENDULUM_CONFIG,
                )
            demo_projects = [project, pendulum]
            model_dir = Path(settings.DATA_DIR) / "demo-lm"
            if (model_dir / "demo_lm.json").is_file():
                generated = Project.objects.filter(slug="demo-lm").first()
                if generated is None:
                    generated = services.create_project(
                        slug="demo-lm",
                        name="Demo: which generated answer is nicer?",
                        kind=Project.Kind.TEXT,
                        instructions=DEMO_LM_INSTRUCTIONS,
                        overlap=1,
                        round_size=16,
                        config=demo_lm_config(model_dir),
                    )
                demo_projects.append(generated)
            for user in users.values():
                for demo in demo_projects:
                    services.add_member(project=demo, user=user)
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))
