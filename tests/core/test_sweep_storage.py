"""manage.py sweep_storage: files no row names, older than a grace period, are listed and
deleted on request; named files and young files are kept."""

from __future__ import annotations

import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from labeling.models import Item


def _store(name: str, *, hours_old: float) -> str:
    stored = default_storage.save(name, ContentFile(b"x"))
    then = time.time() - hours_old * 3600
    os.utime(default_storage.path(stored), (then, then))
    return stored


@pytest.fixture
def files(make_project, media_root):
    project = make_project("p", kind="trajectory")
    named = _store("segments/p/kept.npz", hours_old=48)
    Item.objects.create(project=project, payload=named)
    return {
        "named": named,
        "orphan": _store("checkpoints/p/policy.pt", hours_old=48),
        "young": _store("clips/p/clip.mp4", hours_old=1),
    }


def test_sweep_lists_only_old_unnamed_files_and_deletes_nothing(files, capsys):
    call_command("sweep_storage")

    out = capsys.readouterr().out.splitlines()
    assert out[0] == files["orphan"]
    assert "1 unreferenced file(s) found" in out[-1]
    assert all(default_storage.exists(name) for name in files.values())


def test_sweep_with_delete_deletes_the_orphan_only(files, capsys):
    call_command("sweep_storage", "--delete")

    assert not default_storage.exists(files["orphan"])
    assert default_storage.exists(files["named"]) and default_storage.exists(files["young"])


def test_a_shorter_grace_period_takes_younger_files_too(files, capsys):
    call_command("sweep_storage", "--older-than", "0.5")

    listed = capsys.readouterr().out.splitlines()[:-1]
    assert listed == sorted([files["orphan"], files["young"]])


def test_a_negative_grace_period_is_refused(db):
    with pytest.raises(CommandError, match="--older-than must be 0 or more"):
        call_command("sweep_storage", "--older-than", "-1")
