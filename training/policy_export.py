"""A policy version written out of storage, as the export API and ``manage.py
export_policy`` give it: the stored checkpoint as it is, or for a LoRA version (an adapter
on config.model_dir) either the adapter or its weights merged into the base, a plain
Hugging Face model directory that any tool loads.

Only a merge loads torch (training.ml.lm.lora, imported when asked): telling an adapter
from a whole model reads the zip's names.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from django.core.files.storage import default_storage

from core.errors import InvalidInput
from training.models import Policy

WEIGHTS = ("merged", "adapter")
ADAPTER_CONFIG = "adapter_config.json"  # peft's name for it (training.ml.lm.lora)


def is_adapter(policy: Policy) -> bool:
    """Whether the policy's checkpoint is a LoRA adapter rather than whole weights."""
    name = policy.checkpoint.name
    if not name.endswith(".zip"):
        return False
    with default_storage.open(name, "rb") as f, zipfile.ZipFile(f) as archive:
        return ADAPTER_CONFIG in archive.namelist()


def checked_weights(policy: Policy, weights: str | None) -> str:
    """``weights`` as asked ("merged" when not), or InvalidInput: a value other than
    merged or adapter, or adapter for a policy trained in full."""
    if weights in (None, ""):
        return "merged"
    if weights not in WEIGHTS:
        raise InvalidInput(f"weights must be merged or adapter, got {weights!r}.")
    if weights == "adapter" and not is_adapter(policy):
        raise InvalidInput(
            f"Policy v{policy.version} of {policy.project.slug!r} was trained in full (its "
            "project has no config.lora), so it has no adapter to export: ask for "
            "weights=merged, its whole weights."
        )
    return weights


def needs_merge(policy: Policy, weights: str) -> bool:
    """Whether giving ``weights`` means merging an adapter into its base; otherwise the
    stored checkpoint is the answer."""
    return weights == "merged" and is_adapter(policy)


def write_merged(policy: Policy, out: Path) -> Path:
    """The LoRA policy's adapter merged into its base (the project's config.model_dir, else
    the base the adapter names), saved with save_pretrained into ``out`` with the tokenizer."""
    from training import artifacts
    from training.ml.lm import lm, lora

    base_dir = (policy.project.config or {}).get("model_dir") or None
    with artifacts.local_directory(policy.checkpoint) as path:
        model, tokenizer = lora.load_policy(path, base_dir=base_dir, merge=True)
    return lm.save_policy(model, tokenizer, out)


def merged_archive(policy: Policy) -> IO[bytes]:
    """write_merged's directory as a zip in an anonymous temporary file, at its start (it
    goes when closed)."""
    archive = tempfile.TemporaryFile()
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_merged(policy, Path(tmp) / "policy")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for file in sorted(directory.rglob("*")):
                if file.is_file():
                    zipped.write(file, file.relative_to(directory).as_posix())
    archive.seek(0)
    return archive


def write_stored(policy: Policy, out: Path) -> None:
    """The stored checkpoint at ``out``: a zip unpacked into that directory, another file
    copied to that path."""
    with default_storage.open(policy.checkpoint.name, "rb") as f:
        if policy.checkpoint.name.endswith(".zip"):
            with zipfile.ZipFile(f) as archive:
                archive.extractall(out)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "wb") as target:
                shutil.copyfileobj(f, target)
