"""The README's command lines run as printed, on a development checkout with no settings in
the environment but the servers' URLs: the README cannot drift from the commands again.

Only the budgets are made tiny (rounds, judgements, the demo project's env steps)."""

import os
import shlex
import subprocess
from pathlib import Path

from django.core.management import call_command
from django.db import connection

from labeling.models import Judgement, Project
from training.models import Run

REPO = Path(__file__).resolve().parents[2]
TINY_OPTIONS = {"--rounds": "1", "--judgements": "3"}
TINY_PENDULUM = {
    "env_steps_per_round": 256,
    "comparisons_per_round": 4,
    "segment_length": 10,
    "ensemble_size": 1,
    "render_clips": False,
    "eval_episodes": 1,
    "ppo": {"num_envs": 2, "num_steps": 64, "update_epochs": 1},
}


def readme_commands() -> list[list[str]]:
    """Each ``.venv/bin/python manage.py ...`` line of the README's ``sh`` blocks, with its
    backslash continuations joined, as an argument list."""
    commands, in_block, pending = [], False, ""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```sh"
            continue
        if not in_block:
            continue
        pending += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        if pending.startswith(".venv/bin/python manage.py"):
            commands.append(shlex.split(pending))
        pending = ""
    return commands


def tiny(argv: list[str]) -> list[str]:
    return [TINY_OPTIONS.get(argv[i - 1], arg) if i else arg for i, arg in enumerate(argv)]


def test_the_readme_prints_the_loop_commands():
    names = [argv[2] for argv in readme_commands()]
    assert {"run_loop", "simulate_annotators"} <= set(names)


def _env(media_root: Path) -> dict:
    """This machine's environment as a new user's shell has it: no Django settings, but
    the URLs of the servers this test run uses (its test database)."""
    db = connection.settings_dict
    host = (db["HOST"] or "").replace("/", "%2F")
    port = f":{db['PORT']}" if db["PORT"] else ""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    env["DATABASE_URL"] = f"postgresql://{db['USER']}@{host}{port}/{db['NAME']}"
    env["MEDIA_ROOT"] = str(media_root)
    return env


def test_the_readmes_commands_run_as_printed_one_after_another(
    transactional_db, media_root, settings
):
    settings.DEBUG = True  # demo accounts are for development only
    call_command("seed_demo")
    project = Project.objects.get(slug="demo-pendulum")
    project.config = {**project.config, **TINY_PENDULUM}
    project.save()
    env = _env(media_root)
    for argv in map(tiny, readme_commands()):
        done = subprocess.run(
            [str(REPO / argv[0]), *argv[1:]],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, shlex.join(argv) + done.stdout[-3000:] + done.stderr[-3000:]
        if argv[2] == "run_loop":
            rounds = Run.objects.filter(project=project, kind="round", status="succeeded")
            assert rounds.count() >= int(argv[argv.index("--rounds") + 1])
        if argv[2] == "simulate_annotators":
            teacher = argv[argv.index("--teacher") + 1]
            judged = Judgement.objects.filter(
                project=project, annotator__username=f"sim-{teacher}"
            ).count()
            assert judged == int(argv[argv.index("--judgements") + 1])
