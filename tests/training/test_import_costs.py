"""The web process never loads the training code: a fresh interpreter that sets Django up,
loads every URL, view, admin and task, and asks whether projects can train, has imported
neither torch, transformers nor gymnasium (they cost seconds and hundreds of MB)."""

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
import django
django.setup()
import rlhf_platform.urls  # every view and API
import training.tasks, demo.tasks  # what Celery autodiscovery imports in the web process
import demo.context_processors  # every page runs it
from labeling.models import Project
from training import services
for kind, config in [("trajectory", {"env_id": "Pendulum-v1"}), ("text", {})]:
    try:
        services.check_trainable(Project(slug="p", kind=kind, config=config))
    except Exception as exc:
        print(type(exc).__name__, file=sys.stderr)
heavy = ["torch", "transformers", "gymnasium", "training.kinds.trajectory"]
print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""


def test_urls_tasks_and_the_trainability_check_load_no_training_code():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "rlhf_platform.test_settings"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.split() == ["InvalidInput"]  # the text project has no model_dir
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
