"""The loop for trajectory projects (Christiano et al. 2017), as the steps of a round.

Each function takes the step's Run and a progress callback and returns a StepResult
whose ``commit`` writes the new rows; files (segments, clips, checkpoints) go through
Django's storage API before that transaction.
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile

from labeling import services as labeling_services
from labeling.config import validate_project_config
from labeling.models import Item, Judgement, Project
from training.ml.bradley_terry import PREFERENCE_TARGET
from training.ml.control import checkpoints, clips, replay, selection
from training.ml.control.actor_critic import train_a2c
from training.ml.control.policies import policy_for_env
from training.ml.control.policy_gradient import train_reinforce
from training.ml.control.ppo import train_ppo
from training.ml.control.reward_models import (
    NormalizedReward,
    fit_reward_ensemble,
    reward_ensemble_for_env,
)
from training.ml.control.rollouts import Segment, evaluate_policy
from training.models import Policy, RewardModel, Run
from training.services import StepResult, record_version

OPTIMIZERS = {"reinforce": train_reinforce, "a2c": train_a2c, "ppo": train_ppo}
MIN_PAIRS_TO_FIT = 4
REWARD_EPOCHS = 40
DISAGREEMENT_OVERSAMPLE = 4
EVAL_EPISODES = 5


def finite_metrics(metrics: dict) -> dict[str, float]:
    """Numbers only, and only finite ones: a run with no finished episode reports NaN
    returns, which JSON (and PostgreSQL's jsonb) cannot hold."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and math.isfinite(float(v))
    }


def _config(project: Project) -> dict:
    return validate_project_config(project.kind, project.config)


def _round_seed(step: Run) -> int:
    return int(_config(step.project)["seed"] or 0) * 1000 + step.number


def _save(name: str, content) -> str:
    return default_storage.save(name, content)


# --- segments in storage ---------------------------------------------------------------------
def save_segment(project: Project, segment: Segment) -> str:
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        observations=segment.observations,
        actions=segment.actions,
        true_rewards=segment.true_rewards,
    )
    return _save(f"segments/{project.slug}/segment.npz", ContentFile(buffer.getvalue()))


def load_segment(item: Item) -> Segment:
    with default_storage.open(item.payload.name, "rb") as f:
        data = np.load(io.BytesIO(f.read()))
        return Segment(
            observations=data["observations"],
            actions=data["actions"],
            true_rewards=data["true_rewards"],
        )


def judged_pairs(project: Project) -> list[tuple[Segment, Segment, float]]:
    """Every usable judgement as (segment a, segment b, p_a): a ranking gives all its
    C(K, 2) pairs with p = 1; a tie gives p = 0.5; skips are not used."""
    judgements = Judgement.objects.filter(project=project).exclude(choice=Judgement.Choice.SKIP)
    items = {
        item.pk: item
        for item in Item.objects.filter(project=project).exclude(payload="").only("pk", "payload")
    }
    cache: dict[int, Segment] = {}

    def segment(pk: int) -> Segment:
        if pk not in cache:
            cache[pk] = load_segment(items[pk])
        return cache[pk]

    pairs = []
    for judgement in judgements.order_by("pk"):
        if judgement.choice == Judgement.Choice.TIE:
            a, b = judgement.shown_order[:2]
            if a in items and b in items:
                pairs.append((segment(a), segment(b), PREFERENCE_TARGET["tie"]))
            continue
        ranking = [pk for pk in (judgement.ranking or []) if pk in items]
        for i, better in enumerate(ranking):
            for worse in ranking[i + 1 :]:
                pairs.append((segment(better), segment(worse), PREFERENCE_TARGET["left"]))
    return pairs


# --- step 1: fit the reward model ------------------------------------------------------------
def fit_reward_model(step: Run, progress) -> StepResult:
    project = step.project
    config = _config(project)
    pairs = judged_pairs(project)
    if len(pairs) < MIN_PAIRS_TO_FIT:
        return StepResult({"reward/n_pairs": len(pairs), "reward/skipped": 1})
    ensemble = reward_ensemble_for_env(
        config["env_id"], n_members=config["ensemble_size"], seed=_round_seed(step)
    )
    fit = fit_reward_ensemble(
        ensemble=ensemble,
        pairs=pairs,
        epochs=REWARD_EPOCHS,
        seed=_round_seed(step),
        progress=lambda f: progress(0.95 * f),
    )
    metrics = {
        "reward/n_pairs": len(pairs),
        "reward/train_loss": fit.train_loss,
        "reward/heldout_loss": fit.heldout_loss,
        "reward/heldout_accuracy": fit.heldout_accuracy,
    }
    name = _save_checkpoint(project, "reward", ensemble)

    def commit() -> None:
        record_version(
            RewardModel,
            project=project,
            checkpoint=name,
            metrics={k: v for k, v in metrics.items() if v is not None},
            run=step,
        )

    return StepResult({k: v for k, v in metrics.items() if v is not None}, commit)


def _save_checkpoint(project: Project, kind: str, obj) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoints.save_checkpoint(obj, Path(tmp) / f"{kind}.pt")
        with open(path, "rb") as f:
            return _save(f"checkpoints/{project.slug}/{kind}.pt", File(f))


@contextmanager
def local_copy(stored: FieldFile) -> Iterator[str]:
    """A stored file as a local path, for loaders that want one (storage may be remote)."""
    with default_storage.open(stored.name, "rb") as f, tempfile.NamedTemporaryFile() as tmp:
        shutil.copyfileobj(f, tmp)
        tmp.flush()
        yield tmp.name


def _load_latest_reward_model(project: Project):
    latest = RewardModel.objects.filter(project=project).order_by("-version").first()
    if latest is None:
        return None, None
    with local_copy(latest.checkpoint) as path:
        return latest, checkpoints.load_reward_ensemble(path)


def _load_latest_policy(project: Project, *, seed: int):
    latest = Policy.objects.filter(project=project).order_by("-version").first()
    if latest is None:
        return None, policy_for_env(_config(project)["env_id"], seed=seed)
    with local_copy(latest.checkpoint) as path:
        return latest, checkpoints.load_policy(path)


# --- step 2: improve the policy --------------------------------------------------------------
def improve_policy(step: Run, progress) -> StepResult:
    project = step.project
    config = _config(project)
    optimizer = OPTIMIZERS[config["algorithm"]]  # tabular ones go to training.tabular
    reward_version, ensemble = _load_latest_reward_model(project)
    if ensemble is None:
        return StepResult({"policy/skipped": 1})
    seed = _round_seed(step)
    _, policy = _load_latest_policy(project, seed=seed)
    reward_fn = NormalizedReward(ensemble)
    train_metrics = optimizer(
        env_id=config["env_id"],
        policy=policy,
        reward_fn=reward_fn,
        total_steps=config["env_steps_per_round"],
        seed=seed,
        progress=lambda f: progress(0.9 * f),
    )
    true_return = evaluate_policy(
        env_id=config["env_id"], policy=policy, episodes=EVAL_EPISODES, seed=10_000 + seed
    )
    progress(0.97)
    metrics = {
        **finite_metrics(train_metrics),
        "charts/true_return": float(true_return),
        "policy/reward_model_version": reward_version.version,
    }
    name = _save_checkpoint(project, "policy", policy)

    def commit() -> None:
        record_version(Policy, project=project, checkpoint=name, metrics=metrics, run=step)

    return StepResult(metrics, commit)


# --- step 3: new comparisons -----------------------------------------------------------------
def generate_comparisons(step: Run, progress) -> StepResult:
    project = step.project
    config = _config(project)
    seed = _round_seed(step)
    parent, policy = _load_latest_policy(project, seed=seed)
    n_pairs = config["comparisons_per_round"]
    rng = np.random.default_rng(seed)
    _, ensemble = _load_latest_reward_model(project)
    strategy = config["selection"] if ensemble is not None else "random"
    oversample = DISAGREEMENT_OVERSAMPLE if strategy == "disagreement" else 1
    candidates = replay.collect_replayable_segments(
        env_id=config["env_id"],
        policy=policy,
        n_segments=2 * n_pairs * oversample,
        segment_length=config["segment_length"],
        seed=seed,
    )
    segments = [c.segment for c in candidates]
    if strategy == "disagreement":
        pairs = selection.disagreement_pairs(
            ensemble=ensemble, segments=segments, n_pairs=n_pairs, oversample=oversample, rng=rng
        )
    else:
        pairs = [(2 * i, 2 * i + 1) for i in range(n_pairs)]  # candidates are i.i.d.
    progress(0.1)
    chosen = sorted({i for pair in pairs for i in pair})
    stored: dict[int, dict] = {}
    for n, index in enumerate(chosen):
        stored[index] = _store_segment_files(project, config, candidates[index])
        progress(0.1 + 0.85 * (n + 1) / len(chosen))
    policy_version = parent.version if parent else 0
    initial_checkpoint = None if parent else _save_checkpoint(project, "policy", policy)

    def commit() -> None:
        if initial_checkpoint is not None:
            Policy.objects.create(
                project=project,
                version=0,
                checkpoint=initial_checkpoint,
                metrics={"policy/initial": 1},
                run=step,
            )
        items = {}
        for index, files in stored.items():
            items[index] = Item.objects.create(
                project=project,
                data={
                    "true_return": candidates[index].segment.true_return,
                    "policy_version": policy_version,
                    "episode_seed": candidates[index].episode_seed,
                    "start": candidates[index].start,
                    "round": step.number,
                },
                **files,
            )
        for a, b in pairs:
            labeling_services.create_comparison(
                project=project, items=[items[a], items[b]], data={"round": step.number}
            )

    returns = [segments[i].true_return for i in chosen]
    metrics = {
        "comparisons/created": len(pairs),
        "comparisons/selection": {"random": 0, "disagreement": 1}[strategy],
        "comparisons/mean_true_return": float(np.mean(returns)),
    }
    return StepResult(metrics, commit)


def _store_segment_files(project: Project, config: dict, candidate) -> dict[str, str]:
    files = {"payload": save_segment(project, candidate.segment)}
    if config["render_clips"]:
        frames = replay.render_segment(env_id=config["env_id"], replayable=candidate)
        with tempfile.TemporaryDirectory() as tmp:
            clip = clips.write_clip(frames, path=Path(tmp) / "clip.mp4", fps=config["fps"])
            poster = clips.write_poster(frames[0], path=Path(tmp) / "poster.png")
            with open(clip, "rb") as f:
                files["clip"] = _save(f"clips/{project.slug}/clip.mp4", File(f))
            with open(poster, "rb") as f:
                files["poster"] = _save(f"posters/{project.slug}/poster.png", File(f))
    return files


def judgeable(item: Item) -> Segment:
    """What a synthetic teacher judges: the item's segment, with its true rewards."""
    return load_segment(item)
