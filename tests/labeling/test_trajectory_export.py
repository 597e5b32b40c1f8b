"""Exports of a trajectory project: full JSONL with each segment's provenance and file
URLs, the segments zip loadable with numpy alone, and formats that do not fit refused."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.test import Client

from labeling import services
from labeling.models import Item, Project

CLIP_BYTES = b"\x00\x00\x00\x18ftypmp42 not really a clip"


def _segment_file(seed: int) -> tuple[ContentFile, dict[str, np.ndarray]]:
    """A .npz as training.artifacts.save_segment writes it, and the arrays in it."""
    rng = np.random.default_rng(seed)
    arrays = {
        "observations": rng.normal(size=(5, 3)).astype(np.float32),
        "actions": rng.integers(0, 2, size=5).astype(np.int64),
        "true_rewards": rng.normal(size=5).astype(np.float32),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return ContentFile(buffer.getvalue(), name="segment.npz"), arrays


def _segment_item(project: Project, *, seed: int, clip: bool = True) -> tuple[Item, dict]:
    """An item as the trajectory kind's generate_comparisons stores it."""
    payload, arrays = _segment_file(seed)
    item = Item(
        project=project,
        data={
            "true_return": float(arrays["true_rewards"].sum()),
            "policy_version": seed % 3,
            "episode_seed": 1000 + seed,
            "start": 7 * seed,
        },
    )
    item.payload.save(f"{project.slug}-{seed}.npz", payload, save=False)
    if clip:
        item.clip.save(f"{project.slug}-{seed}.mp4", ContentFile(CLIP_BYTES), save=False)
    item.save()
    return item, arrays


@pytest.fixture
def staff(make_user):
    return make_user("boss", staff=True)


@dataclass
class Trajectory:
    project: Project
    annotators: list
    comparisons: list
    arrays: dict[int, dict[str, np.ndarray]]  # by seed: what each item's .npz holds


@pytest.fixture
def trajectory(make_project, make_user, media_root) -> Trajectory:
    """A trajectory project with three pairs of segments and three annotators."""
    annotators = [make_user(f"annotator{i}") for i in range(3)]
    project = make_project(
        "cartpole", kind=Project.Kind.TRAJECTORY, members=annotators, round_size=1000
    )
    arrays, comparisons = {}, []
    for n in range(3):
        pair = []
        for seed in (2 * n, 2 * n + 1):
            item, arrays[seed] = _segment_item(project, seed=seed)
            pair.append(item)
        comparisons.append(services.create_comparison(project=project, items=pair))
    return Trajectory(project, annotators, comparisons, arrays)


def _judge_each(project, annotators, choices) -> list[list[int]]:
    """Annotator i answers choices[i] to the comparison they are leased; the shown orders."""
    shown = []
    for annotator, choice in zip(annotators, choices, strict=True):
        lease = services.assign_next_comparison(annotator=annotator, project=project)
        services.record_judgement(annotator=annotator, comparison=lease.comparison, choice=choice)
        shown.append(lease.display_order)
    return shown


def _export(client, project, fmt: str | None):
    query = "" if fmt is None else f"?format={fmt}"
    return client.get(f"/api/projects/{project.slug}/export/{query}")


def test_full_export_of_a_trajectory_project_gives_provenance_and_absolute_file_urls(
    trajectory, staff, api_client_for
):
    project, annotators, arrays = trajectory.project, trajectory.annotators, trajectory.arrays
    _judge_each(project, annotators[:1], ["left"])

    response = _export(api_client_for(staff), project, "full")

    assert response.status_code == 200
    (line,) = [json.loads(raw) for raw in b"".join(response.streaming_content).splitlines()]
    assert [item["id"] for item in line["items"]] == line["shown_order"]
    for shown in line["items"]:
        item = Item.objects.get(pk=shown["id"])
        seed = item.data["episode_seed"] - 1000
        assert shown["episode_seed"] == 1000 + seed
        assert shown["start"] == 7 * seed
        assert shown["policy_version"] == seed % 3
        assert shown["true_return"] == pytest.approx(float(arrays[seed]["true_rewards"].sum()))
        assert shown["segment_url"] == f"http://testserver{item.payload.url}"
        assert shown["clip_url"] == f"http://testserver{item.clip.url}"
        browser = Client()
        browser.force_login(staff)
        segment = browser.get(urlsplit(shown["segment_url"]).path)
        assert segment.status_code == 200
        stored = np.load(io.BytesIO(b"".join(segment.streaming_content)))
        np.testing.assert_array_equal(stored["observations"], arrays[seed]["observations"])
        clip = browser.get(urlsplit(shown["clip_url"]).path)
        assert clip.status_code == 200 and b"".join(clip.streaming_content) == CLIP_BYTES


def test_full_export_is_the_default_for_a_trajectory_project_and_nulls_what_an_item_lacks(
    make_project, make_user, staff, api_client_for, media_root
):
    annotator = make_user()
    project = make_project(kind=Project.Kind.TRAJECTORY, members=[annotator], round_size=1000)
    bare = [Item.objects.create(project=project) for _ in range(2)]  # no files, no data
    services.create_comparison(project=project, items=bare)
    _judge_each(project, [annotator], ["tie"])

    response = _export(api_client_for(staff), project, None)

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith(f'"{project.slug}-full.jsonl"')
    (line,) = [json.loads(raw) for raw in b"".join(response.streaming_content).splitlines()]
    for shown in line["items"]:
        assert shown == {
            "id": shown["id"],
            "episode_seed": None,
            "start": None,
            "policy_version": None,
            "true_return": None,
            "segment_url": None,
            "clip_url": None,
        }


def test_a_segment_file_is_for_staff_only_while_the_clip_is_for_members(trajectory):
    item = trajectory.comparisons[0].items.first()
    member = Client()
    member.force_login(trajectory.annotators[0])

    assert member.get(item.clip.url).status_code == 200
    assert member.get(item.payload.url).status_code == 404  # it holds the true rewards


def test_a_script_fetches_an_exports_file_urls_with_its_token(trajectory, staff, api_client_for):
    item = trajectory.comparisons[0].items.first()
    script = api_client_for(staff)
    segment = script.get(item.payload.url)
    assert segment.status_code == 200
    assert segment["Cache-Control"] == "private, max-age=3600"
    assert segment["Accept-Ranges"] == "bytes"
    annotator = api_client_for(trajectory.annotators[0])
    assert annotator.get(item.clip.url).status_code == 200
    assert annotator.get(item.payload.url).status_code == 404

    forged = Client(HTTP_AUTHORIZATION="Token not-a-token")
    assert forged.get(item.clip.url).status_code == 401
    anonymous = Client().get(item.clip.url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_segments_export_is_a_zip_of_npz_files_and_pairs_loadable_with_numpy(
    trajectory, staff, api_client_for
):
    project, annotators, arrays = trajectory.project, trajectory.annotators, trajectory.arrays
    shown = _judge_each(project, annotators, ["left", "right", "tie"])

    response = _export(api_client_for(staff), project, "segments")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="cartpole-segments.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    judged = sorted(pk for order in shown for pk in order)
    assert sorted(archive.namelist()) == sorted(
        ["README.txt", "pairs.jsonl", "items.jsonl"] + [f"items/{pk}.npz" for pk in judged]
    )
    pairs = [json.loads(line) for line in archive.read("pairs.jsonl").splitlines()]
    (left, right), (right_first, right_second), (tie_first, tie_second) = shown
    assert pairs == [
        {"a": left, "b": right, "p": 1.0, "annotator": "annotator0"},  # left won
        {"a": right_second, "b": right_first, "p": 1.0, "annotator": "annotator1"},
        {"a": tie_first, "b": tie_second, "p": 0.5, "annotator": "annotator2"},
    ]
    items = {row["id"]: row for row in map(json.loads, archive.read("items.jsonl").splitlines())}
    for pk in judged:
        seed = items[pk]["episode_seed"] - 1000
        assert items[pk] == {
            "id": pk,
            "episode_seed": 1000 + seed,
            "start": 7 * seed,
            "policy_version": seed % 3,
            "true_return": pytest.approx(float(arrays[seed]["true_rewards"].sum())),
            "file": f"items/{pk}.npz",
        }
        with archive.open(items[pk]["file"]) as f:
            segment = np.load(io.BytesIO(f.read()))
            for key in ("observations", "actions", "true_rewards"):
                np.testing.assert_array_equal(segment[key], arrays[seed][key])
    readme = archive.read("README.txt").decode()
    assert all(key in readme for key in ("observations", "actions", "true_rewards", "numpy"))


def test_segments_export_of_a_ranking_gives_its_pairs_best_first(
    make_project, make_user, staff, api_client_for, media_root
):
    annotator = make_user("ranker")
    project = make_project(kind=Project.Kind.TRAJECTORY, members=[annotator], round_size=1000)
    items = [_segment_item(project, seed=seed, clip=False)[0] for seed in range(3)]
    services.create_comparison(project=project, items=items)
    lease = services.assign_next_comparison(annotator=annotator, project=project)
    best_first = [items[2].pk, items[0].pk, items[1].pk]
    services.record_judgement(annotator=annotator, comparison=lease.comparison, ranking=best_first)

    response = _export(api_client_for(staff), project, "segments")

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    pairs = [json.loads(line) for line in archive.read("pairs.jsonl").splitlines()]
    assert [(pair["a"], pair["b"], pair["p"]) for pair in pairs] == [
        (best_first[0], best_first[1], 1.0),
        (best_first[0], best_first[2], 1.0),
        (best_first[1], best_first[2], 1.0),
    ]


def test_segments_export_of_a_project_without_judgements_is_a_zip_without_pairs(
    trajectory, staff, api_client_for
):
    project = trajectory.project

    response = _export(api_client_for(staff), project, "segments")

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["README.txt", "items.jsonl", "pairs.jsonl"]
    assert archive.read("pairs.jsonl") == b""


def test_trl_export_of_a_trajectory_project_is_400_naming_full_and_segments(
    trajectory, staff, api_client_for
):
    project = trajectory.project

    response = _export(api_client_for(staff), project, "trl")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "format: must be full or segments for a trajectory project" in detail
    assert "trl is for text projects" in detail


def test_segments_export_of_a_text_project_is_400_naming_trl_kto_and_full(
    make_project, staff, api_client_for
):
    project = make_project("words")

    response = _export(api_client_for(staff), project, "segments")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "format: must be trl, kto or full for a text project" in detail
    assert "segments is for trajectory projects" in detail


def test_segments_export_is_for_staff_only(trajectory, api_client_for):
    member = api_client_for(trajectory.annotators[0])

    response = _export(member, trajectory.project, "segments")

    assert response.status_code == 403
