"""The loop for text projects (InstructGPT and DPO), as the steps of a round.

Policies and reward models are Hugging Face model directories (``save_pretrained``); they
are zipped into one file for Django's storage and unzipped to a temporary directory to
load. DPO trains on the judgements directly and skips the reward model; PPO and
REINFORCE fit r_θ(x, y) first and optimise r_θ − β·KL(π‖π_ref), where π_ref is the
policy the round started from.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile

from core.errors import InvalidInput
from labeling import services as labeling_services
from labeling.config import validate_project_config
from labeling.models import Item, Judgement, Project
from training.ml.lm import lm
from training.ml.lm.dpo import train_dpo
from training.ml.lm.lm_policy_gradient import train_lm_policy_gradient
from training.ml.lm.lm_reward import (
    LMRewardModel,
    fit_lm_reward_model,
    load_lm_reward_model,
    save_lm_reward_model,
)
from training.ml.lm.text_teacher import lexicon_score, load_lexicon, text_judgeable
from training.models import Policy, RewardModel, Run
from training.services import StepResult, record_version
from training.trajectory import finite_metrics

MIN_JUDGEMENTS_TO_FIT = 4
REWARD_EPOCHS = 3
DPO_EPOCHS = 2
PG_ITERATIONS = 8


def config_of(project: Project) -> dict:
    from training.pipelines import check_trainable

    check_trainable(project)
    return validate_project_config(project.kind, project.config)


def prompts_of(project: Project, config: dict) -> list[str]:
    """config.prompts, or else the prompts of the project's imported items."""
    if config["prompts"]:
        return list(config["prompts"])
    imported = (
        Item.objects.filter(project=project).exclude(prompt="").values_list("prompt", flat=True)
    )
    prompts = list(dict.fromkeys(imported))
    if not prompts:
        raise InvalidInput(
            f"Project {project.slug!r} has no prompts: set config.prompts or import some."
        )
    return prompts


def _seed(step: Run, config: dict) -> int:
    return int(config["seed"] or 0) * 1000 + step.number


# --- model directories in storage ------------------------------------------------------------
def store_directory(project: Project, kind: str, directory: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        archive = shutil.make_archive(str(Path(tmp) / kind), "zip", root_dir=directory)
        with open(archive, "rb") as f:
            return default_storage.save(f"checkpoints/{project.slug}/{kind}.zip", File(f))


@contextmanager
def local_directory(stored: FieldFile) -> Iterator[Path]:
    """A stored model directory (a zip) unpacked to a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp, default_storage.open(stored.name, "rb") as f:
        with zipfile.ZipFile(f) as archive:
            archive.extractall(tmp)
        yield Path(tmp)


def _latest(model, project: Project):
    return model.objects.filter(project=project).order_by("-version").first()


def _load_policy(project: Project, config: dict):
    """(latest Policy row or None, model, tokenizer): the base model before any round."""
    latest = _latest(Policy, project)
    if latest is None:
        model, tokenizer = lm.load_causal_lm(config["model_dir"])
        return None, model, tokenizer
    with local_directory(latest.checkpoint) as path:
        model, tokenizer = lm.load_policy(path)
    return latest, model, tokenizer


def _save_policy(project: Project, model, tokenizer) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        lm.save_policy(model, tokenizer, Path(tmp))
        return store_directory(project, "policy", Path(tmp))


# --- judgements as training data -------------------------------------------------------------
def _judged(project: Project):
    items = {i.pk: i for i in Item.objects.filter(project=project).only("pk", "prompt", "text")}
    for judgement in (
        Judgement.objects.filter(project=project)
        .exclude(choice=Judgement.Choice.SKIP)
        .order_by("pk")
    ):
        yield judgement, items


def rankings(project: Project) -> list:
    """For the reward model: (prompt, [texts best first]) per ranking or pair, and
    (prompt, a, b, 0.5) per tie (InstructGPT keeps a ranking's C(K,2) pairs together)."""
    found = []
    for judgement, items in _judged(project):
        if judgement.choice == Judgement.Choice.TIE:
            a, b = (items[pk] for pk in judgement.shown_order[:2])
            found.append((a.prompt, a.text, b.text, 0.5))
        elif judgement.ranking:
            texts = [items[pk].text for pk in judgement.ranking]
            found.append((items[judgement.ranking[0]].prompt, texts))
    return found


def preference_pairs(project: Project) -> list[tuple[str, str, str]]:
    """For DPO: (prompt, chosen, rejected); a ranking gives all its C(K, 2) pairs, ties none."""
    pairs = []
    for judgement, items in _judged(project):
        ranking = judgement.ranking or []
        for i, better in enumerate(ranking):
            for worse in ranking[i + 1 :]:
                pairs.append((items[better].prompt, items[better].text, items[worse].text))
    return pairs


# --- step 1: reward model --------------------------------------------------------------------
def fit_reward_model(step: Run, progress) -> StepResult:
    project = step.project
    config = config_of(project)
    if config["algorithm"] == "dpo":
        return StepResult({"reward/skipped": 1})  # DPO learns from the pairs directly
    data = rankings(project)
    if len(data) < MIN_JUDGEMENTS_TO_FIT:
        return StepResult({"reward/n_judgements": len(data), "reward/skipped": 1})
    _, base, tokenizer = _load_policy(project, config)
    model = LMRewardModel.from_causal_lm(base, tokenizer, seed=_seed(step, config))
    fit = fit_lm_reward_model(
        model=model,
        rankings=data,
        epochs=REWARD_EPOCHS,
        seed=_seed(step, config),
        progress=lambda f: progress(0.9 * f),
    )
    metrics = {
        "reward/n_judgements": len(data),
        "reward/train_loss": fit.train_loss,
        "reward/heldout_loss": fit.heldout_loss,
        "reward/heldout_accuracy": fit.heldout_accuracy,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        save_lm_reward_model(model, Path(tmp))
        name = store_directory(project, "reward", Path(tmp))

    def commit() -> None:
        record_version(RewardModel, project=project, checkpoint=name, metrics=metrics, run=step)

    return StepResult(metrics, commit)


# --- step 2: policy --------------------------------------------------------------------------
def improve_policy(step: Run, progress) -> StepResult:
    project = step.project
    config = config_of(project)
    seed = _seed(step, config)
    _, policy, tokenizer = _load_policy(project, config)
    if config["algorithm"] == "dpo":
        pairs = preference_pairs(project)
        if not pairs:
            return StepResult({"policy/skipped": 1})
        # DPO, Rafailov et al. 2023; the reference is the policy this round started from.
        train_metrics = train_dpo(
            policy=policy,
            tokenizer=tokenizer,
            pairs=pairs,
            beta=config["beta"],
            epochs=DPO_EPOCHS,
            seed=seed,
            progress=lambda f: progress(0.8 * f),
        )
    else:
        reward_row = _latest(RewardModel, project)
        if reward_row is None:
            return StepResult({"policy/skipped": 1})
        with local_directory(reward_row.checkpoint) as path:
            reward_model = load_lm_reward_model(path)
        train_metrics = train_lm_policy_gradient(
            algorithm=config["algorithm"],
            policy=policy,
            reference=lm.frozen_copy(policy),
            tokenizer=tokenizer,
            reward_fn=reward_model.score,
            prompts=prompts_of(project, config),
            k=config["k"],
            beta=config["beta"],
            temperature=config["temperature"],
            top_p=config["top_p"],
            max_new_tokens=config["max_new_tokens"],
            iterations=PG_ITERATIONS,
            seed=seed,
            progress=lambda f: progress(0.8 * f),
        )
    metrics = {**finite_metrics(train_metrics), **_teacher_score(policy, tokenizer, config, seed)}
    name = _save_policy(project, policy, tokenizer)

    def commit() -> None:
        record_version(Policy, project=project, checkpoint=name, metrics=metrics, run=step)

    return StepResult(metrics, commit)


def _teacher_score(model, tokenizer, config: dict, seed: int) -> dict[str, float]:
    """The synthetic teacher's mean score of fresh samples: how the policy does on the
    rule the simulated annotators judge by (a figure for the dashboard)."""
    prompts = config["prompts"][:8] or ["Question: How was your day?\nAnswer:"]
    samples = lm.sample_responses(
        model=model,
        tokenizer=tokenizer,
        prompts=prompts,
        k=2,
        temperature=config["temperature"],
        top_p=config["top_p"],
        max_new_tokens=config["max_new_tokens"],
        seed=seed + 7,
    )
    lexicon = load_lexicon()
    scores = [lexicon_score(text, lexicon) for group in samples for text in group]
    return {"teacher/mean_score": float(np.mean(scores))}


# --- step 3: new comparisons -----------------------------------------------------------------
def generate_comparisons(step: Run, progress) -> StepResult:
    project = step.project
    config = config_of(project)
    seed = _seed(step, config)
    parent, policy, tokenizer = _load_policy(project, config)
    all_prompts = prompts_of(project, config)
    n = config["comparisons_per_round"]
    start = (step.number - 1) * n
    prompts = [all_prompts[(start + i) % len(all_prompts)] for i in range(n)]
    samples = lm.sample_responses(
        model=policy,
        tokenizer=tokenizer,
        prompts=prompts,
        k=config["k"],
        temperature=config["temperature"],
        top_p=config["top_p"],
        max_new_tokens=config["max_new_tokens"],
        seed=seed,
    )
    progress(0.8)
    initial = None if parent else _save_policy(project, policy, tokenizer)
    policy_version = parent.version if parent else 0

    def commit() -> None:
        if initial is not None:
            Policy.objects.create(
                project=project, version=0, checkpoint=initial, metrics={"policy/initial": 1}
            )
        for prompt, responses in zip(prompts, samples, strict=True):
            items = [
                Item.objects.create(
                    project=project,
                    prompt=prompt,
                    text=text,
                    data={"policy_version": policy_version, "round": step.number},
                )
                for text in responses
            ]
            labeling_services.create_comparison(
                project=project, items=items, data={"round": step.number}
            )

    return StepResult({"comparisons/created": len(prompts)}, commit)


def judgeable(item: Item):
    """What a synthetic teacher judges: the response scored by the sentiment lexicon."""
    return text_judgeable(item.text)
