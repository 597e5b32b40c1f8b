"""manage.py import_dataset --project SLUG PATH: a Hugging Face dataset's rows as
comparisons of a text project."""

from __future__ import annotations

import tempfile
from pathlib import Path

import datasets
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.errors import ImportRejected, InvalidInput
from labeling import dataset_rows, imports
from labeling.dataset_rows import RowError
from labeling.models import Project

DATA_FILES = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
SAVED = ("dataset_info.json", "state.json", "dataset_dict.json")  # save_to_disk's files


class Command(BaseCommand):
    help = (
        "Import a Hugging Face dataset into a text project: PATH is a directory written by "
        "Dataset.save_to_disk or DatasetDict.save_to_disk, a directory of Parquet or JSONL "
        "data files, or one Parquet file. Columns prompt/chosen/rejected (strings or "
        "message lists; without prompt, the part chosen and rejected share is the prompt) "
        "become judged pairs; prompt/responses comparisons to judge; messages (rows that "
        "differ only in the final assistant turn) one comparison of those turns. All rows "
        "or none are stored; a row imported before is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="the text project's slug")
        parser.add_argument(
            "--split", help="the split of a dataset with several (default: train, or its only one)"
        )
        parser.add_argument(
            "--importer",
            help="username recorded as the author of judged pairs (chosen/rejected rows)",
        )

    def handle(self, *args, path: Path, project: str, split, importer, verbosity, **options):
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project {project!r}.")
        if found.kind != Project.Kind.TEXT:
            raise CommandError(
                f"Project {project!r} is a {found.kind} project; import_dataset is for text "
                "projects."
            )
        user = None
        if importer is not None:
            user = get_user_model().objects.filter(username=importer).first()
            if user is None:
                raise CommandError(f"No user {importer!r} (--importer).")
        with tempfile.TemporaryDirectory(prefix="import_dataset-") as cache:
            dataset, split = _load(path, split, cache)
            columns = dataset_rows.columns_for(dataset.column_names)
            if columns is None:
                raise CommandError(
                    f"{path}: no columns to import; it has {', '.join(dataset.column_names)}. "
                    "Expected prompt, chosen, rejected; chosen, rejected; prompt, responses; "
                    "or messages."
                )
            if user is None and "chosen" in columns:
                raise CommandError(
                    "Rows of chosen and rejected are judged pairs: say who judged them with "
                    "--importer USERNAME."
                )
            where = f"{path}" + (f" (split {split})" if split else "")
            if not len(dataset):
                raise CommandError(f"{where} holds no rows.")
            if ignored := [c for c in dataset.column_names if c not in columns]:
                self.stdout.write(f"Reading {', '.join(columns)}; ignoring {', '.join(ignored)}.")
            rows = tqdm(
                dataset.select_columns(list(columns)),
                total=len(dataset),
                desc="rows",
                unit="row",
                file=_Unended(self.stderr),
                disable=verbosity == 0,
            )
            try:
                lines = dataset_rows.lines(rows, columns)
            except RowError as exc:
                raise CommandError(f"{where}, {exc}. Nothing was stored.") from None
            finally:
                rows.close()
        try:
            result = imports.import_lines(project=found, lines=lines, importer=user)
        except ImportRejected as exc:
            detail = exc.message.removeprefix(f"line {exc.line}: ")
            row = f", row {exc.line}" if exc.line is not None else ""
            raise CommandError(f"{where}{row}: {detail}") from None
        except InvalidInput as exc:
            raise CommandError(f"{where}: {exc.message} Nothing was stored.") from None
        self.stdout.write(
            f"Imported {where} into {project}: {result.created_items} items, "
            f"{result.created_comparisons} comparisons, {result.created_judgements} "
            f"judgements; {result.skipped_duplicates} skipped as imported before (or repeated)."
        )


class _Unended:
    """A command's output for tqdm: its carriage-returned updates as written, with no
    newline or colour added."""

    def __init__(self, out):
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, style_func=str, ending="")

    def flush(self) -> None:
        self.out.flush()


def _load(path: Path, split: str | None, cache: str) -> tuple[datasets.Dataset, str | None]:
    """The dataset at ``path`` (its ``split``, if it has several) and the split read."""
    if not path.exists():
        raise CommandError(f"No file or directory {path}.")
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # ours counts the rows
    try:
        if path.is_file():
            if path.suffix not in DATA_FILES:
                raise CommandError(
                    f"{path}: expected a Parquet (.parquet) or JSONL (.jsonl) file, or a dataset "
                    "directory."
                )
            if split not in (None, "train"):
                raise CommandError(f"{path} is one file, one split; leave out --split.")
            builder = DATA_FILES[path.suffix]
            return _read(path, datasets.load_dataset, builder, data_files=str(path),
                         split="train", cache_dir=cache), None  # fmt: skip
        if any((path / name).exists() for name in SAVED):
            loaded = _read(path, datasets.load_from_disk, str(path))
        elif any(f.suffix in DATA_FILES for f in path.rglob("*") if f.is_file()):
            loaded = _read(path, datasets.load_dataset, str(path), cache_dir=cache)
        else:
            raise CommandError(
                f"{path} holds no dataset: neither the files of save_to_disk nor Parquet "
                "or JSONL data files."
            )
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    if isinstance(loaded, datasets.Dataset):
        if split is not None:
            raise CommandError(f"{path} holds one dataset, no splits; leave out --split.")
        return loaded, None
    names = list(loaded)
    if split is None:
        split = "train" if "train" in names or len(names) != 1 else names[0]
    if split not in names:
        raise CommandError(f"{path} has no split {split!r}; it has {', '.join(names)} (--split).")
    return loaded[split], split


def _read(path: Path, read, *args, **kwargs):
    try:
        return read(*args, **kwargs)
    except Exception as exc:  # datasets and pyarrow raise many kinds
        raise CommandError(f"Could not read {path} as a dataset: {exc}") from None
