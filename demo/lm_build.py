"""The demo language model, built on a worker in the background.

Building it takes minutes on a small machine, so ``runplatform`` does not wait for it: it
queues ``demo.build_demo_lm`` and the web app is up at once. The build's state lives in a
small JSON file beside the model (``DATA_DIR/demo-lm.status.json``), which the site's
pages read to show its progress; when the model is saved, the task creates the ``demo-lm``
project and queues its first round, and the project appears on the annotators' home page.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from core.errors import DomainError
from demo.accounts import DEMO_USERS
from labeling import services
from labeling.models import Project

log = logging.getLogger(__name__)

SLUG = "demo-lm"
INSTRUCTIONS = """\
These answers were written by a small language model trained on this machine. Pick the
answer that is **more positive and pleasant**; every 16 judgements the model is trained
on your choices (DPO) and writes new answers.
"""


class State:
    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class BuildStatus:
    state: str
    fraction: float = 0.0
    error: str = ""


def model_dir() -> Path:
    return Path(settings.DATA_DIR) / "demo-lm"


def is_built(path: Path | None = None) -> bool:
    return ((path or model_dir()) / "demo_lm.json").is_file()


def _status_path() -> Path:
    return Path(settings.DATA_DIR) / "demo-lm.status.json"


def read_status() -> BuildStatus | None:
    """The background build's state; None when no build was ever queued here."""
    if is_built():
        return BuildStatus(State.READY, 1.0)
    try:
        raw = json.loads(_status_path().read_text())
        return BuildStatus(str(raw["state"]), float(raw["fraction"]), str(raw.get("error", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_status(status: BuildStatus) -> None:
    """Replace the status file atomically: a reader sees the old state or the new one."""
    path = _status_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(status)))
    partial.replace(path)


def demo_lm_config(path: Path) -> dict:
    from training.ml.lm.demo_lm import read_prompts  # torch: not on the web's import path

    return {
        "model_dir": str(path),
        "prompts": read_prompts(),
        "k": 2,
        "temperature": 1.0,
        "top_p": 0.95,
        "max_new_tokens": 40,
        "algorithm": "dpo",
        "beta": 0.1,
        "comparisons_per_round": 16,
    }


def ensure_project(path: Path | None = None) -> Project:
    """The ``demo-lm`` project on the built model, with every demo account as a member
    (the demo accounts are the users seed_demo made). Running it again changes nothing."""
    path = path or model_dir()
    with transaction.atomic():
        project = Project.objects.filter(slug=SLUG).first()
        if project is None:
            project = services.create_project(
                slug=SLUG,
                name="Demo: which generated answer is nicer?",
                kind=Project.Kind.TEXT,
                instructions=INSTRUCTIONS,
                overlap=1,
                round_size=16,
                config=demo_lm_config(path),
            )
        names = [username for username, _, _ in DEMO_USERS]
        for user in get_user_model().objects.filter(username__in=names):
            services.add_member(project=project, user=user)
    return project


def build_and_seed(*, steps: int | None = None, path: Path | None = None) -> str:
    """Build the model (unless built), create its project and queue its first round.

    One build at a time per machine: a second call while one runs returns at once. The
    status file follows the build, and says ``failed`` with the error if it raises."""
    from training import services as training

    path = path or model_dir()
    lock_path = Path(settings.DATA_DIR) / "demo-lm.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "already building"
        if not is_built(path):
            _build(path, steps)
        project = ensure_project(path)
    if not project.comparisons.exists():
        try:
            training.start_round(project=project, trigger="seed")
        except DomainError:
            pass  # a round is already on its way
    return "ready"


def _build(path: Path, steps: int | None) -> None:
    from training.ml.lm.demo_lm import DEMO_CORPUS, build_demo_lm  # torch, transformers

    write_status(BuildStatus(State.BUILDING, 0.0))
    last_write = 0.0

    def progress(fraction: float) -> None:
        nonlocal last_write
        if time.monotonic() - last_write >= 1.0:
            write_status(BuildStatus(State.BUILDING, round(fraction, 3)))
            last_write = time.monotonic()

    try:
        build_demo_lm(
            corpus_path=DEMO_CORPUS,
            out_dir=path,
            seed=0,
            progress=progress,
            **({"steps": steps} if steps else {}),
        )
    except Exception as exc:
        log.exception("Building the demo language model failed")
        write_status(BuildStatus(State.FAILED, 0.0, f"{type(exc).__name__}: {exc}"))
        raise
    write_status(BuildStatus(State.READY, 1.0))
