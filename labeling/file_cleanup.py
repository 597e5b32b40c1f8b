"""A deleted project takes its files with it: its items' clips, posters and segments, and
its imports' uploads (training removes its checkpoints the same way). The names are read
in one query per field before the rows go, and the files deleted after the commit."""

from __future__ import annotations

from django.db.models.signals import pre_delete

from core.storage import delete_after_commit
from labeling.models import ImportJob, Item, Project


def delete_project_files(sender, instance: Project, **kwargs) -> None:
    items = Item.objects.filter(project=instance)
    names = [
        *items.values_list("clip", flat=True),
        *items.values_list("poster", flat=True),
        *items.values_list("payload", flat=True),
        *ImportJob.objects.filter(project=instance).values_list("upload", flat=True),
    ]
    delete_after_commit(names)


def connect() -> None:
    pre_delete.connect(delete_project_files, sender=Project, dispatch_uid="labeling-files")
