"""Deleting a project, even in the middle of a round: the worker's step writes nothing
and stops its chain, no row is left, and the project's files go with it."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeling.models import ImportJob, Item, Project
from training import services
from training.models import Policy, RewardModel, Run
from training.steps import StepResult


@pytest.fixture
def round_steps(make_project):
    project = make_project(kind="trajectory", round_size=10**6)
    round_run = services.start_round(project=project, trigger="test", enqueue=False)
    return project, {step.kind: step for step in round_run.steps.all()}


@pytest.mark.django_db
def test_a_project_deleted_while_its_step_runs_gets_nothing_written(round_steps):
    project, steps = round_steps
    fit = steps[Run.Kind.FIT_REWARD_MODEL]

    def work(run, progress):
        Project.objects.filter(pk=project.pk).delete()  # staff deletes it in the admin
        return StepResult({}, lambda: Item.objects.create(project_id=project.pk, text="late"))

    with pytest.raises(services.ClaimLost):
        services.execute_step(step_id=fit.pk, work=work)
    assert not Item.objects.filter(project_id=project.pk).exists()
    assert not Run.objects.filter(project_id=project.pk).exists()

    # the chain's next task finds no step: it stops, with no database error
    with pytest.raises(services.StepNotRunnable, match="no longer exists"):
        services.execute_step(
            step_id=steps[Run.Kind.IMPROVE_POLICY].pk, work=lambda run, progress: None
        )


@pytest.mark.django_db
def test_deleting_a_project_deletes_its_files_and_leaves_other_projects_files(
    make_project, make_user, media_root, django_capture_on_commit_callbacks
):
    def stored(name: str) -> str:
        return default_storage.save(name, ContentFile(b"bytes"))

    def files_of(project: Project) -> list[str]:
        item = Item.objects.create(
            project=project,
            clip=stored(f"clips/{project.slug}/c.mp4"),
            poster=stored(f"posters/{project.slug}/p.png"),
            payload=stored(f"segments/{project.slug}/s.npz"),
        )
        upload = stored(f"imports/{project.slug}.jsonl")
        ImportJob.objects.create(project=project, importer=staff, upload=upload)
        policy = Policy.objects.create(
            project=project, version=1, checkpoint=stored(f"checkpoints/{project.slug}/p.pt")
        )
        reward = RewardModel.objects.create(
            project=project, version=1, checkpoint=stored(f"checkpoints/{project.slug}/r.pt")
        )
        names = [item.clip.name, item.poster.name, item.payload.name, upload]
        return [*names, policy.checkpoint.name, reward.checkpoint.name]

    staff = make_user(staff=True)
    doomed, kept = make_project("doomed"), make_project("kept")
    doomed_files, kept_files = files_of(doomed), files_of(kept)
    assert all(default_storage.exists(name) for name in doomed_files + kept_files)

    with django_capture_on_commit_callbacks(execute=True):
        doomed.delete()

    assert not any(default_storage.exists(name) for name in doomed_files)
    assert all(default_storage.exists(name) for name in kept_files)
