"""What a round stores, and how it reads it back: segments, checkpoints, model directories,
tables, clips and posters, the newest versions, and the items and comparisons it makes.

Everything goes through Django's storage API (which may be remote), written completely
before the transaction that records it; a round finds files only through rows committed
after the files were complete, so a write killed half way is never loaded.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile

from core import storage
from labeling import services as labeling_services
from labeling.models import Item, Project
from labeling.preferences import Preference, preferences
from training.ml.control import clips
from training.ml.control.rollouts import Segment
from training.models import Policy, RewardModel, Run
from training.steps import StepContext, StepResult


# --- files -----------------------------------------------------------------------------------
def store_written_file(project: Project, kind: str, suffix: str, write: Callable[[Path], object]):
    """Store the file that ``write(path)`` writes, as checkpoints/<project>/<kind><suffix>;
    returns its storage name."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}{suffix}"
        write(path)
        with open(path, "rb") as f:
            return storage.save(f"checkpoints/{project.slug}/{kind}{suffix}", File(f))


def store_directory(project: Project, kind: str, write: Callable[[Path], object]) -> str:
    """Store the directory that ``write(directory)`` fills (a Hugging Face model directory,
    say) as one zip; returns its storage name."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / kind
        directory.mkdir()
        write(directory)
        archive = shutil.make_archive(str(Path(tmp) / kind), "zip", root_dir=directory)
        with open(archive, "rb") as f:
            return storage.save(f"checkpoints/{project.slug}/{kind}.zip", File(f))


@contextmanager
def local_copy(stored: FieldFile) -> Iterator[str]:
    """A stored file as a local path, for loaders that want one."""
    with default_storage.open(stored.name, "rb") as f, tempfile.NamedTemporaryFile() as tmp:
        shutil.copyfileobj(f, tmp)
        tmp.flush()
        yield tmp.name


@contextmanager
def local_directory(stored: FieldFile) -> Iterator[Path]:
    """A stored model directory (a zip) unpacked to a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp, default_storage.open(stored.name, "rb") as f:
        with zipfile.ZipFile(f) as archive:
            archive.extractall(tmp)
        yield Path(tmp)


def store_table(project: Project, kind: str, table: np.ndarray) -> str:
    """A tabular checkpoint (r̂(s, a) or π(a|s), float64) as checkpoints/<project>/<kind>.npy."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(table, dtype=np.float64))
    return storage.save(f"checkpoints/{project.slug}/{kind}.npy", ContentFile(buffer.getvalue()))


def load_table(row: RewardModel | Policy) -> np.ndarray:
    with default_storage.open(row.checkpoint.name, "rb") as f:
        return np.load(io.BytesIO(f.read()))


# --- segments and clips ----------------------------------------------------------------------
def save_segment(project: Project, segment: Segment) -> str:
    """A segment's observations, actions and true rewards as one .npz (a tabular segment's
    observations are its states)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        observations=segment.observations,
        actions=segment.actions,
        true_rewards=segment.true_rewards,
    )
    return storage.save(f"segments/{project.slug}/segment.npz", ContentFile(buffer.getvalue()))


def load_segment(item: Item) -> Segment:
    with default_storage.open(item.payload.name, "rb") as f:
        data = np.load(io.BytesIO(f.read()))
        return Segment(
            observations=data["observations"],
            actions=data["actions"],
            true_rewards=data["true_rewards"],
        )


def judged_segments(
    project: Project, *, comparison_ids: Sequence[int] | None = None
) -> list[tuple[Segment, Segment, float, Preference]]:
    """Every usable judgement of ``project`` (or of ``comparison_ids``) as (segment a,
    segment b, P[a ≻ b], the preference), each stored segment loaded once."""
    pairs = preferences(project, comparison_ids=comparison_ids)
    ids = {pk for pair in pairs for pk in (pair.a_id, pair.b_id)}
    segments = {
        item.pk: load_segment(item)
        for item in Item.objects.filter(pk__in=ids).exclude(payload="").only("pk", "payload")
    }
    return [
        (segments[pair.a_id], segments[pair.b_id], pair.p, pair)
        for pair in pairs
        if pair.a_id in segments and pair.b_id in segments
    ]


def store_segment(
    project: Project,
    segment: Segment,
    *,
    frames: Callable[[], Sequence[np.ndarray]] | None,
    fps: int,
) -> dict[str, str]:
    """An item's files: the segment ("payload") and, when ``frames`` renders it, its clip
    and poster."""
    files = {"payload": save_segment(project, segment)}
    if frames is not None:
        files |= store_clip(project, frames(), fps=fps)
    return files


def store_clip(project: Project, frames: Sequence[np.ndarray], *, fps: int) -> dict[str, str]:
    """An H.264 clip of ``frames`` and a poster of its first frame: {"clip", "poster"}."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = clips.write_clip(frames, path=Path(tmp) / "clip.mp4", fps=fps)
        poster = clips.write_poster(frames[0], path=Path(tmp) / "poster.png")
        with open(clip, "rb") as f:
            clip_name = storage.save(f"clips/{project.slug}/clip.mp4", File(f))
        with open(poster, "rb") as f:
            poster_name = storage.save(f"posters/{project.slug}/poster.png", File(f))
    return {"clip": clip_name, "poster": poster_name}


# --- versions --------------------------------------------------------------------------------
def latest(model: type[RewardModel] | type[Policy], project: Project):
    """The newest RewardModel or Policy row of ``project``, or None."""
    return model.objects.filter(project=project).order_by("-version").first()


def record_initial_policy(*, project: Project, checkpoint: str, run: Run) -> Policy:
    """Version 0: the policy a project starts from, stored by the round that first uses it
    (call inside that step's commit)."""
    return Policy.objects.create(
        project=project, version=0, checkpoint=checkpoint, metrics={"policy/initial": 1}, run=run
    )


# --- new comparisons -------------------------------------------------------------------------
@dataclass
class NewItem:
    """An item a round makes: text, or stored files (payload, clip, poster), and its
    provenance (policy version, seed, true return, ...)."""

    data: dict
    prompt: str = ""
    text: str = ""
    files: dict[str, str] = field(default_factory=dict)
    # a conversation item's messages (labeling/conversations.py); None: plain text
    prompt_messages: list[dict[str, str]] | None = None
    messages: list[dict[str, str]] | None = None


def new_comparisons(
    context: StepContext,
    metrics: dict,
    *,
    items: Sequence[NewItem],
    comparisons: Sequence[tuple[Sequence[int], dict]],
    initial_policy: str | None,
) -> StepResult:
    """The result of a generate_comparisons step: ``metrics``, and a commit that writes
    ``items`` and the ``comparisons`` among them, each (indices into ``items``, extra data),
    every row recording its round, and version 0 of the policy when ``initial_policy`` is
    the checkpoint of the policy a project starts from."""

    def commit() -> None:
        if initial_policy is not None:
            record_initial_policy(
                project=context.project, checkpoint=initial_policy, run=context.step
            )
        create_comparisons(
            project=context.project,
            round_number=context.step.number,
            items=items,
            comparisons=comparisons,
        )

    return StepResult(metrics, commit)


def create_comparisons(
    *,
    project: Project,
    round_number: int,
    items: Sequence[NewItem],
    comparisons: Sequence[tuple[Sequence[int], dict]],
) -> None:
    """Write ``items`` and the ``comparisons`` among them (see new_comparisons)."""
    created = [
        Item.objects.create(
            project=project,
            prompt=item.prompt,
            text=item.text,
            prompt_messages=item.prompt_messages,
            messages=item.messages,
            data={**item.data, "round": round_number},
            **item.files,
        )
        for item in items
    ]
    for indices, data in comparisons:
        labeling_services.create_comparison(
            project=project,
            items=[created[i] for i in indices],
            data={"round": round_number, **data},
        )
