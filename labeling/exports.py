"""A project's judgements as training data files: rows in TRL's preference and KTO
formats or in full (written as JSONL or, by labeling/parquet.py, as Parquet), and the
trajectory segments zip."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db.models import Q, QuerySet
from django.db.models.fields.files import FieldFile

from labeling import feedback
from labeling.models import Item, Judgement, Project
from labeling.preferences import preferences, verdicts

# Which exports fit which kind of project; the first is the default.
EXPORT_FORMATS = {
    Project.Kind.TEXT: ("trl", "kto", "full"),
    Project.Kind.TRAJECTORY: ("full", "segments"),
}
# How a row format is written (``file=``); the first is the default. segments is a zip.
EXPORT_FILES = ("jsonl", "parquet")


# --- conversations ---------------------------------------------------------------------------
def is_conversational(project: Project) -> bool:
    """Whether any item of ``project`` holds messages: its preference exports are then in
    TRL's conversational format, plain items' texts turned into one-message lists."""
    return (
        Item.objects.filter(project=project)
        .filter(Q(prompt_messages__isnull=False) | Q(messages__isnull=False))
        .exists()
    )


def prompt_messages(item: Item) -> list[dict[str, str]]:
    return item.prompt_messages or [{"role": "user", "content": item.prompt}]


def candidate_messages(item: Item) -> list[dict[str, str]]:
    return item.messages or [{"role": "assistant", "content": item.text}]


def _items_by_id(project: Project) -> dict[int, Item]:
    return {
        item.pk: item
        for item in Item.objects.filter(project=project).only(
            "pk", "prompt", "text", "prompt_messages", "messages", "clip", "payload", "data"
        )
    }


# --- TRL's preference and KTO formats --------------------------------------------------------
def export_trl(project: Project) -> Iterator[dict]:
    """Preference pairs as TRL's trainers read them: {prompt, chosen, rejected}; for a
    conversational project (``is_conversational``) TRL's conversational format, the prompt
    a list of messages and chosen and rejected lists of assistant messages.

    A ranking of K items gives all C(K, 2) pairs; an annotator's edit of the winner is
    chosen over every item they ranked; ties, skips and both_bad give none; gold answers
    are not exported. Each judgement contributes its own pairs, so a comparison judged by
    three annotators appears up to three times (TRL averages over them)."""
    items = _items_by_id(project)
    conversational = is_conversational(project)
    for pair in preferences(project, ties=False):
        chosen, rejected = items[pair.a_id], items[pair.b_id]
        if conversational:
            yield {
                "prompt": prompt_messages(chosen),
                "chosen": candidate_messages(chosen),
                "rejected": candidate_messages(rejected),
            }
        else:
            yield {"prompt": chosen.prompt, "chosen": chosen.text, "rejected": rejected.text}


def export_kto(project: Project) -> Iterator[dict]:
    """Completions judged good or bad on their own, as TRL's KTOTrainer reads them:
    {prompt, completion, label} (conversational: prompt and completion message lists).
    ``label`` is true for a desirable completion: from ratings, an item whose weighted
    mean over the project's criteria is 5 or more (3 or less: false; between: left out);
    from a choice without ratings, the winner true and the last ranked false; both_bad
    makes each item false; an edit is true (labeling.preferences.verdicts)."""
    items = _items_by_id(project)
    conversational = is_conversational(project)
    for verdict in verdicts(project, criteria=feedback.criteria_of(project.config)):
        item = items[verdict.item_id]
        if conversational:
            yield {
                "prompt": prompt_messages(item),
                "completion": candidate_messages(item),
                "label": verdict.desirable,
            }
        else:
            yield {"prompt": item.prompt, "completion": item.text, "label": verdict.desirable}


# --- full ------------------------------------------------------------------------------------
def _judgements_for_export(project: Project) -> QuerySet[Judgement]:
    return (
        Judgement.objects.filter(project=project)
        .select_related("annotator", "comparison")
        .order_by("pk")
    )


def _as_is(path: str) -> str:
    return path


def export_full(project: Project, *, absolute_url: Callable[[str], str] = _as_is) -> Iterator[dict]:
    """One line per judgement: who, what they saw, what they answered, how long it took.

    A text project's items are {id, prompt, text, prompt_messages, messages, ratings}:
    the messages None for plain text, ratings this judgement's {criterion: 1..7} of the
    item or None; beside them the answer's strength ("" when not given), critique ("") and
    edit ({id, text, messages} of the annotator's improved winner, or None). A trajectory
    project's items are {id, episode_seed, start, policy_version, true_return,
    segment_url, clip_url}, None where the item lacks it; each URL is ``absolute_url`` of
    the file's path. ``choice`` is left, right, tie, skip, ranking or both_bad."""
    items = _items_by_id(project)
    text = project.kind == Project.Kind.TEXT
    for judgement in _judgements_for_export(project):
        if text:
            given = judgement.ratings or {}
            shown = [
                _text_item(item, given.get(str(item.pk)))
                for item in _shown(items, judgement.shown_order)
            ]
        else:
            shown = [
                _trajectory_item(item, absolute_url)
                for item in _shown(items, judgement.shown_order)
            ]
        row = {
            "judgement_id": judgement.pk,
            "comparison_id": judgement.comparison_id,
            "annotator": judgement.annotator.get_username(),
            "source": judgement.source,
            "choice": judgement.choice,
            "ranking": judgement.ranking,
            "shown_order": judgement.shown_order,
            "items": shown,
        }
        if text:
            edit = items.get(judgement.edit_id)
            row |= {
                "strength": judgement.strength,
                "critique": judgement.critique,
                "edit": None
                if edit is None
                else {"id": edit.pk, "text": edit.text, "messages": edit.messages},
            }
        yield row | {
            "time_spent_ms": judgement.time_spent_ms,
            "gold": judgement.comparison.gold_ranking,
            "created_at": judgement.created_at.isoformat(),
            # the answer above is the latest; its history is in the admin
            "revised_at": judgement.revised_at.isoformat() if judgement.revised_at else None,
        }


def _shown(items: dict[int, Item], shown_order: list[int]) -> list[Item]:
    return [items[pk] for pk in shown_order if pk in items]  # an item deleted since is left out


def _text_item(item: Item, ratings: dict[str, int] | None) -> dict:
    return {
        "id": item.pk,
        "prompt": item.prompt,
        "text": item.text,
        "prompt_messages": item.prompt_messages,
        "messages": item.messages,
        "ratings": ratings,
    }


def _trajectory_item(item: Item, absolute_url: Callable[[str], str]) -> dict:
    return {
        "id": item.pk,
        **_provenance(item),
        "segment_url": _file_url(item.payload, absolute_url),
        "clip_url": _file_url(item.clip, absolute_url),
    }


def _provenance(item: Item) -> dict:
    """What training.kinds.trajectory records of a segment: where it came from."""
    keys = ("episode_seed", "start", "policy_version", "true_return")
    return {key: item.data.get(key) for key in keys}


def _file_url(stored: FieldFile, absolute_url: Callable[[str], str]) -> str | None:
    return absolute_url(stored.url) if stored else None


# --- trajectory segments ---------------------------------------------------------------------
SEGMENTS_README = """\
Preference data of project {slug}, as `format=segments` exports it: loadable with
numpy alone.

pairs.jsonl
    One line per judged pair: {{"a": item id, "b": item id, "p": P(a better than b),
    "annotator": username}}. p = 1.0 when a was ranked above b (a ranking of K items
    gives its K(K-1)/2 pairs, better first) and 0.5 for a tie; skips give no line. Each
    judgement gives its own lines, so a pair judged by three annotators appears three
    times. Pairs with an item that has no segment file are left out.

items.jsonl
    One line per item in pairs.jsonl: {{"id", "episode_seed", "start", "policy_version",
    "true_return", "file"}}. The segment is steps start .. start+T-1 of the episode
    that began with env.reset(seed=episode_seed), played by policy version
    policy_version (0: the initial policy).

items/<id>.npz
    The segment shown as item <id>. numpy.load(path) holds
        observations  (T, obs_dim) float32   o_t, encoded (a Discrete observation one-hot)
        actions       (T,) int64 for Discrete actions, (T, act_dim) float32 for Box
        true_rewards  (T,) float32           the environment's reward; annotators never
                                             saw it, and a reward model must not see it

    import json, numpy as np
    pairs = [json.loads(line) for line in open("pairs.jsonl")]
    a = np.load(f"items/{{pairs[0]['a']}}.npz")
    a["observations"].shape, a["actions"].shape
"""


def export_segments(project: Project, into: BinaryIO) -> None:
    """Write a zip of ``project``'s preferences over trajectory segments into ``into``:
    pairs.jsonl (``preferences``, ties at ½), items.jsonl, items/<id>.npz (each item's
    stored segment, copied in chunks) and README.txt describing them."""
    with_segment = {
        item.pk: item
        for item in Item.objects.filter(project=project)
        .exclude(payload="")
        .only("pk", "payload", "data")
    }
    pairs = [
        pair
        for pair in preferences(project)
        if pair.a_id in with_segment and pair.b_id in with_segment
    ]
    usernames = dict(
        get_user_model()
        .objects.filter(pk__in={pair.annotator_id for pair in pairs})
        .values_list("pk", get_user_model().USERNAME_FIELD)
    )
    in_pairs = sorted({pk for pair in pairs for pk in (pair.a_id, pair.b_id)})
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", SEGMENTS_README.format(slug=project.slug))
        archive.writestr(
            "pairs.jsonl",
            _jsonl(
                {"a": pair.a_id, "b": pair.b_id, "p": pair.p,
                 "annotator": usernames[pair.annotator_id]}
                for pair in pairs
            ),
        )  # fmt: skip
        archive.writestr(
            "items.jsonl",
            _jsonl(
                {"id": pk, **_provenance(with_segment[pk]), "file": f"items/{pk}.npz"}
                for pk in in_pairs
            ),
        )
        for pk in in_pairs:
            # .npz segments are compressed already: stored as they are
            entry = zipfile.ZipInfo(f"items/{pk}.npz", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_STORED
            with (
                default_storage.open(with_segment[pk].payload.name, "rb") as source,
                archive.open(entry, "w") as target,
            ):
                shutil.copyfileobj(source, target)


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
