"""Arenas: blind evaluations between policy versions of one project.

``start_arena`` (a web request) records the Arena and, once that commits, sends the task
``training.sample_arena`` to the train queue. The task claims the arena with a conditional
update (queued → running; nothing claimed, nothing done, so a redelivered message does
nothing), samples from every version outside any transaction, then writes the items, the
comparisons and the ArenaEntry rows in one transaction under its claim (running →
sampled). Each comparison pairs two distinct versions, every pair of versions equally often,
their samples made alike: for trajectory and tabular projects a segment each, of the
project's ``segment_length``, from one reset seed; for text projects a response each to one
prompt. The comparisons are ordinary ones (no gold, judged and trained on like any other),
their items created and shown in a random order; which version made an item is only on
its ArenaEntry, never on anything an annotator receives.

An arena is finished once each of its comparisons has ``project.overlap`` judgements other
than skips (``finish_if_judged``, run when the arena is read and by the periodic
``check_arenas``, never on the judgement path), and ``arena.finished`` is emitted; a failed
arena emits it too, with status "failed".

Cheap to import: the kinds' training code (torch, gymnasium, transformers) loads inside
the sampling functions, on a worker.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from itertools import combinations

import numpy as np
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core import storage
from core.errors import InvalidInput
from labeling import services as labeling_services
from labeling import webhooks
from labeling.config import project_config
from labeling.models import Comparison, Item, Project, Webhook
from training import arena_selectors
from training.kinds.registry import kind_name
from training.models import Arena, ArenaEntry, Policy

logger = logging.getLogger(__name__)

SAMPLE_TASK = "training.sample_arena"  # sent by name: the web process never imports tasks
QUEUE = "train"  # before CELERY_QUEUE_PREFIX
MAX_VERSIONS = 16
MAX_COMPARISONS = 1000
MAX_VERSION_NUMBER = 2**31 - 1  # a PositiveIntegerField
MAX_SAMPLE_ATTEMPTS = 3  # a sampling whose worker keeps dying is sent at most this often
RESEND_UNSENT_AFTER = timedelta(seconds=30)
RESEND_QUEUED_AFTER = timedelta(hours=4)  # its message was lost (longer than the visibility)
STALE_AFTER = timedelta(minutes=10)

ProgressFn = Callable[[float], None]


class ClaimLost(Exception):
    """This worker's claim on an arena was taken over: it writes nothing."""


# --- starting ----------------------------------------------------------------------------------
def start_arena(
    *,
    project: Project,
    versions: object,
    comparisons: object,
    created_by: AbstractBaseUser | None,
    enqueue: bool = True,
) -> Arena:
    """Queue an arena of ``comparisons`` comparisons between the policy ``versions`` (their
    version numbers) of ``project``, and with ``enqueue`` send its sampling to a worker once
    this transaction commits. InvalidInput naming the bad value when the versions are not
    2..MAX_VERSIONS distinct versions of the project that have a checkpoint, or
    ``comparisons`` is not an integer from the number of pairs of versions (each pair meets
    at least once) to MAX_COMPARISONS."""
    versions = check_versions(project, versions)
    comparisons = check_comparisons(comparisons, n_versions=len(versions))
    with transaction.atomic():
        arena = Arena.objects.create(
            project=project, versions=versions, comparisons=comparisons, created_by=created_by
        )
        if enqueue:
            transaction.on_commit(lambda: enqueue_arena(arena.pk))
    return arena


def check_versions(project: Project, versions: object) -> list[int]:
    """``versions`` as a list of distinct policy version numbers of ``project``."""
    example = "a list of policy version numbers of this project, such as [0, 3]"
    if not isinstance(versions, list):
        raise InvalidInput(f"versions must be {example}; got {versions!r}.")
    for version in versions:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(
                f"versions: {version!r} is not a policy version number (an integer ≥ 0)."
            )
    if len(versions) < 2:
        raise InvalidInput(f"versions must name at least 2 policy versions; got {versions!r}.")
    if len(versions) > MAX_VERSIONS:
        raise InvalidInput(
            f"versions may name at most {MAX_VERSIONS} policy versions; got {len(versions)}."
        )
    repeated = sorted({v for v in versions if versions.count(v) > 1})
    if repeated:
        raise InvalidInput(f"versions: {repeated[0]} is named twice; each version once.")
    known = sorted(
        Policy.objects.filter(project=project)
        .exclude(checkpoint="")
        .values_list("version", flat=True)
    )
    for version in versions:
        if version > MAX_VERSION_NUMBER or version not in known:
            have = ", ".join(map(str, known[-20:])) or "none yet (a round makes them)"
            raise InvalidInput(
                f"versions: project {project.slug!r} has no policy version {version}; "
                f"its versions: {have}."
            )
    return list(versions)


def check_comparisons(comparisons: object, *, n_versions: int) -> int:
    """``comparisons`` if it is an integer from C(n_versions, 2) to MAX_COMPARISONS."""
    fewest = math.comb(n_versions, 2)
    wanted = f"an integer from {fewest} (each pair of versions meets once) to {MAX_COMPARISONS}"
    if isinstance(comparisons, bool) or not isinstance(comparisons, int):
        raise InvalidInput(f"comparisons must be {wanted}; got {comparisons!r}.")
    if not fewest <= comparisons <= MAX_COMPARISONS:
        raise InvalidInput(f"comparisons must be {wanted}; got {comparisons}.")
    return comparisons


def enqueue_arena(arena_id: int) -> bool:
    """Send the arena's sampling task to the train queue. A broker outage is logged, not
    raised: the arena stays queued and check_arenas sends it later."""
    signature = current_app.signature(SAMPLE_TASK, args=(arena_id,), immutable=True)
    try:
        result = signature.set(queue=settings.CELERY_QUEUE_PREFIX + QUEUE).apply_async()
    except Exception:
        logger.exception("could not enqueue arena %s; it stays queued", arena_id)
        return False
    Arena.objects.filter(pk=arena_id).update(celery_task_id=result.id)
    return True


def balanced_pairs(n_versions: int, n_comparisons: int, rng: np.random.Generator):
    """``n_comparisons`` pairs (a, b) of distinct indices into the versions, a < b: every
    pair of versions as often as every other (give or take one), in random order."""
    every = list(combinations(range(n_versions), 2))
    cycles = -(-n_comparisons // len(every))
    chosen = np.concatenate([rng.permutation(len(every)) for _ in range(cycles)])
    chosen = rng.permutation(chosen[:n_comparisons])
    return [every[i] for i in chosen]


# --- sampling (the task's work) ----------------------------------------------------------------
def sample_arena(*, arena_id: int) -> bool:
    """Claim the queued arena, sample its comparisons and write them (see the module
    docstring). Returns False, doing nothing, when the arena is not queued (a redelivered
    message, or a deleted arena). Raises ClaimLost when another attempt took the arena
    over meanwhile (nothing written, its files deleted) and the sampling's error when it
    failed (the arena marked failed, saying why)."""
    now = timezone.now()
    claimed = Arena.objects.filter(pk=arena_id, status=Arena.Status.QUEUED).update(
        status=Arena.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        progress=0.0,
        error="",
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return False
    arena = Arena.objects.select_related("project").get(pk=arena_id)
    claim = Arena.objects.filter(pk=arena.pk, status=Arena.Status.RUNNING, attempts=arena.attempts)

    def progress(fraction: float) -> None:
        fraction = 0.95 * min(max(float(fraction), 0.0), 1.0)  # the writing is the rest
        if not claim.update(progress=fraction, heartbeat_at=timezone.now()):
            raise ClaimLost(f"arena {arena.pk}'s attempt {arena.attempts} was taken over")

    with storage.tracking_writes() as written:
        try:
            _sample_claimed(arena, claim, progress)
        except BaseException:  # nothing committed: its files go too
            storage.delete_now(written)
            raise
    return True


def _sample_claimed(arena: Arena, claim, progress: ProgressFn) -> None:
    project = arena.project
    try:
        config = project_config(project.kind, project.config)
        rng = np.random.default_rng([arena.pk, int(getattr(config, "seed", 0) or 0)])
        indices = balanced_pairs(len(arena.versions), arena.comparisons, rng)
        pairs = [(arena.versions[a], arena.versions[b]) for a, b in indices]
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=len(pairs))]
        sample = SAMPLERS[kind_name(project, config)]
        samples = sample(
            project=project, config=config, pairs=pairs, seeds=seeds, progress=progress
        )
        flipped = rng.random(len(pairs)) < 0.5
        with transaction.atomic():
            now = timezone.now()
            # Marked sampled first, under this attempt's claim: one that lost it stops here.
            if not claim.update(
                status=Arena.Status.SAMPLED, progress=1.0, sampled_at=now, heartbeat_at=now
            ):
                raise ClaimLost(f"arena {arena.pk}'s attempt {arena.attempts} was taken over")
            _write_comparisons(arena, pairs, samples, flipped)
    except ClaimLost:
        logger.warning(
            "arena %s: attempt %s lost its claim; nothing kept", arena.pk, arena.attempts
        )
        raise
    except Exception as exc:
        _fail(arena, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}", claim=claim)
        raise


def _write_comparisons(arena: Arena, pairs, samples, flipped) -> None:
    """Each pair's items, created in the order they are shown (so neither their ids nor
    their positions follow the versions), its comparison, and its entries."""
    entries = []
    for versions, items, flip in zip(pairs, samples, flipped, strict=True):
        shown = list(zip(versions, items, strict=True))
        if flip:
            shown.reverse()
        created = [
            Item.objects.create(
                project=arena.project,
                prompt=item.prompt,
                text=item.text,
                data={**item.data, "arena": arena.pk},
                **item.files,
            )
            for _, item in shown
        ]
        comparison = labeling_services.create_comparison(
            project=arena.project, items=created, data={"arena": arena.pk}
        )
        entries += [
            ArenaEntry(arena=arena, comparison=comparison, item=item, version=version)
            for (version, _), item in zip(shown, created, strict=True)
        ]
    ArenaEntry.objects.bulk_create(entries)


def _policy_row(project: Project, version: int) -> Policy:
    row = Policy.objects.filter(project=project, version=version).exclude(checkpoint="").first()
    if row is None:
        raise InvalidInput(f"Project {project.slug!r} has no policy version {version} any more.")
    return row


def _versions_of(pairs: Sequence[tuple[int, int]]) -> list[int]:
    return sorted({version for pair in pairs for version in pair})


def sample_trajectory_pairs(*, project, config, pairs, seeds, progress):
    """A segment per version of each pair: the first ``segment_length`` steps of the episode
    that starts from reset(seed), the same seed for both (the kind's replayable segments,
    with clips when the project renders them)."""
    from training import artifacts
    from training.artifacts import NewItem
    from training.devices import step_device
    from training.ml.control import checkpoints, replay

    device = step_device(config)
    policies = {}
    for version in _versions_of(pairs):
        with artifacts.local_copy(_policy_row(project, version).checkpoint) as path:
            policies[version] = checkpoints.load_policy(path, device=device)
    samples = []
    for n, (pair, seed) in enumerate(zip(pairs, seeds, strict=True)):
        items = []
        for version in pair:
            (found,) = replay.collect_replayable_segments(
                env_id=config.env_id,
                policy=policies[version],
                n_segments=1,
                segment_length=config.segment_length,
                seed=seed,
                device=device,
            )
            frames = (
                (lambda c=found: replay.render_segment(env_id=config.env_id, replayable=c))
                if config.render_clips
                else None
            )
            files = artifacts.store_segment(project, found.segment, frames=frames, fps=config.fps)
            data = {
                "true_return": found.segment.true_return,
                "episode_seed": found.episode_seed,
                "start": found.start,
            }
            items.append(NewItem(data=data, files=files))
        samples.append(tuple(items))
        progress((n + 1) / len(pairs))
    return samples


def sample_tabular_pairs(*, project, config, pairs, seeds, progress):
    """A segment per version of each pair, acting by the version's table π(a|s) from the
    same reset seed (no exploring starts, no random actions mixed in)."""
    from training import artifacts
    from training.artifacts import NewItem
    from training.ml.control.rollouts import Segment
    from training.ml.tabular.segments import collect_tabular_segments, render_tabular_segment

    tables = {v: artifacts.load_table(_policy_row(project, v)) for v in _versions_of(pairs)}
    samples = []
    for n, (pair, seed) in enumerate(zip(pairs, seeds, strict=True)):
        items = []
        for version in pair:
            (found,) = collect_tabular_segments(
                env_id=config.env_id,
                policy=tables[version],
                n_segments=1,
                segment_length=config.segment_length,
                seed=seed,
                exploring_start_fraction=0.0,
            )
            stored = Segment(
                observations=found.states,
                actions=found.actions,
                true_rewards=found.true_rewards.astype(np.float32),
            )
            frames = (
                (lambda s=found: render_tabular_segment(env_id=config.env_id, segment=s))
                if config.render_clips
                else None
            )
            files = artifacts.store_segment(project, stored, frames=frames, fps=config.fps)
            data = {"true_return": found.true_return, "episode_seed": found.episode_seed}
            items.append(NewItem(data=data, files=files))
        samples.append(tuple(items))
        progress((n + 1) / len(pairs))
    return samples


def sample_text_pairs(*, project, config, pairs, seeds, progress):
    """A response per version of each pair to the pair's prompt (the project's prompts,
    drawn by the pair's seed), each version's responses sampled in one batch from one
    seed, a version loaded at a time."""
    from training import artifacts
    from training.devices import step_device, step_dtype
    from training.kinds.text import prompts_of
    from training.kinds.text_items import context_of, sampled_item
    from training.ml.lm import lm, lora

    device = step_device(config)
    dtype = lm.forward_dtype(step_dtype(config, device), device)
    every = prompts_of(project, config)
    prompts = [every[seed % len(every)] for seed in seeds]
    texts: dict[tuple[int, int], str] = {}
    versions = _versions_of(pairs)
    for k, version in enumerate(versions):
        wanted = [
            (n, side) for n, pair in enumerate(pairs) for side in (0, 1) if pair[side] == version
        ]
        with artifacts.local_directory(_policy_row(project, version).checkpoint) as path:
            # a whole model, or a LoRA adapter merged into config.model_dir
            model, tokenizer = lora.load_policy(path, base_dir=config.model_dir, merge=True)
        with lm.autocast_to(dtype, device):
            responses = lm.sample_responses(
                model=model.to(device),
                tokenizer=tokenizer,
                prompts=[context_of(tokenizer, prompts[n]) for n, _ in wanted],
                k=1,
                temperature=config.temperature,
                top_p=config.top_p,
                max_new_tokens=config.max_new_tokens,
                seed=seeds[0],
                device=device,
                progress=lambda f, k=k: progress((k + f) / len(versions)),
            )
        texts.update({key: group[0] for key, group in zip(wanted, responses, strict=True)})
        del model
    return [
        tuple(sampled_item(prompts[n], texts[n, side], {}) for side in (0, 1))
        for n in range(len(pairs))
    ]


# The sampler of each kind (training.kinds.registry.kind_name).
SAMPLERS = {
    "trajectory": sample_trajectory_pairs,
    "tabular": sample_tabular_pairs,
    "text": sample_text_pairs,
}


# --- finishing ---------------------------------------------------------------------------------
def finish_if_judged(arena: Arena) -> bool:
    """Mark a sampled arena finished, with its leaderboard as ``result``, once each of its
    comparisons (but closed ones) has ``project.overlap`` judgements other than skips, and
    emit ``arena.finished``. Returns whether this call finished it; two queries when not."""
    if arena.status != Arena.Status.SAMPLED:
        return False
    project = arena.project
    waiting = (
        Comparison.objects.filter(
            pk__in=ArenaEntry.objects.filter(arena=arena).values("comparison_id"),
            judgement_count__lt=project.overlap,
        )
        .exclude(status=Comparison.Status.CLOSED)
        .exists()
    )
    if waiting:
        return False
    result = arena_selectors.arena_results(arena)
    with transaction.atomic():
        now = timezone.now()
        finished = Arena.objects.filter(pk=arena.pk, status=Arena.Status.SAMPLED).update(
            status=Arena.Status.FINISHED, progress=1.0, finished_at=now, result=result
        )
        if not finished:
            return False
        arena.status, arena.finished_at, arena.result = Arena.Status.FINISHED, now, result
        _emit_finished(arena)
    return True


def _fail(arena: Arena, error: str, *, claim=None) -> None:
    """Mark the arena failed (only while ``claim`` holds, when given) and say so."""
    mine = claim if claim is not None else Arena.objects.filter(pk=arena.pk)
    now = timezone.now()
    if mine.update(status=Arena.Status.FAILED, error=error, finished_at=now):
        arena.status, arena.error, arena.finished_at = Arena.Status.FAILED, error, now
        _emit_finished(arena)


def _emit_finished(arena: Arena) -> None:
    """The ``arena.finished`` webhook event of an arena that has just finished or failed."""
    project = Project.objects.filter(pk=arena.project_id).only("has_webhooks").first()
    if project is None or not project.has_webhooks:  # None: the project was deleted
        return
    webhooks.emit(
        project_id=arena.project_id,
        event=Webhook.Event.ARENA_FINISHED,
        payload={
            "arena_id": arena.pk,
            "status": arena.status,
            "error": arena.error.splitlines()[0] if arena.error else "",
            "versions": arena.versions,
            "comparisons": arena.comparisons,
            "leaderboard": arena.result.get("leaderboard", []),
            "finished_at": arena.finished_at,
        },
    )


# --- the periodic check ------------------------------------------------------------------------
def check_arenas(*, stale_after: timedelta = STALE_AFTER) -> dict[str, int]:
    """Periodic: finish the sampled arenas that are judged; send arenas that never reached
    the broker or whose message was lost; re-send those whose worker stopped reporting for
    ``stale_after``, failing one already tried MAX_SAMPLE_ATTEMPTS times. Counts of each."""
    now = timezone.now()
    done = {"finished": 0, "sent": 0, "failed": 0}
    for arena in Arena.objects.filter(status=Arena.Status.SAMPLED).select_related("project"):
        done["finished"] += int(finish_if_judged(arena))
    unsent = Arena.objects.filter(
        Q(celery_task_id="", created_at__lt=now - RESEND_UNSENT_AFTER)
        | Q(created_at__lt=now - RESEND_QUEUED_AFTER),
        status=Arena.Status.QUEUED,
    )
    for arena_id in unsent.values_list("pk", flat=True):
        done["sent"] += int(enqueue_arena(arena_id))
    stale = Arena.objects.filter(status=Arena.Status.RUNNING, heartbeat_at__lt=now - stale_after)
    for arena in stale:
        attempt = Arena.objects.filter(
            pk=arena.pk, status=Arena.Status.RUNNING, attempts=arena.attempts
        )
        if arena.attempts >= MAX_SAMPLE_ATTEMPTS:
            _fail(
                arena,
                f"the sampling's worker stopped reporting {arena.attempts} times "
                f"(MAX_SAMPLE_ATTEMPTS = {MAX_SAMPLE_ATTEMPTS}); not sending it again",
                claim=attempt,
            )
            done["failed"] += 1
        elif attempt.update(status=Arena.Status.QUEUED):
            done["sent"] += int(enqueue_arena(arena.pk))
    return done
