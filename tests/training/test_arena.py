"""Arenas: staff start blind evaluations between policy versions; a worker samples them into
ordinary comparisons that never tell annotators which version made what; the leaderboard
ranks the versions with intervals; a trained policy beats an untrained one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from django.core.files.storage import default_storage
from django.template.loader import render_to_string
from django.test import RequestFactory

from labeling import webhooks
from labeling.models import Comparison, Item, WebhookDelivery
from tests.training.rounds import judge_all
from training import arena as arena_service
from training import arena_selectors, artifacts, tasks
from training.ml.teachers import make_teacher
from training.models import Arena, ArenaEntry, Policy
from training.simulation import teacher_answer

LAKE = {
    "env_id": "FrozenLakeNotSlippery-v1",
    "segment_length": 8,
    "algorithm": "value_iteration",
    "render_clips": False,
    "gamma": 0.9,
    "seed": 3,
}
# FrozenLake 4x4, actions 0 left, 1 down, 2 right, 3 up: down, down, right, right, down,
# right reaches the goal from the start (0 → 4 → 8 → 9 → 10 → 14 → 15).
GOAL_PATH = {0: 1, 4: 1, 8: 2, 9: 2, 10: 1, 14: 2}
ANNOTATORS = {"outsider": 404, "member": 403}


def _store_table_policy(project, version: int, table: np.ndarray) -> Policy:
    name = artifacts.store_table(project, "policy", table)
    return Policy.objects.create(project=project, version=version, checkpoint=name)


def _lake_policies(project) -> None:
    """v0: uniformly random; v1: the path to the goal."""
    _store_table_policy(project, 0, np.full((16, 4), 0.25))
    solved = np.full((16, 4), 0.25)
    for state, action in GOAL_PATH.items():
        solved[state] = np.eye(4)[action]
    _store_table_policy(project, 1, solved)


@pytest.fixture
def lake(db, media_root, make_user, make_project):
    member = make_user("member")
    project = make_project(
        "lake", kind="trajectory", config=LAKE, members=[member], round_size=100_000
    )
    _lake_policies(project)
    return project, member


def _start(project, user=None, *, versions=(0, 1), comparisons=10) -> Arena:
    return arena_service.start_arena(
        project=project,
        versions=list(versions),
        comparisons=comparisons,
        created_by=user,
        enqueue=False,
    )


# --- starting: validation and permissions ----------------------------------------------------
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"comparisons": 5}, "versions must be a list"),
        ({"versions": "0,1", "comparisons": 5}, "versions must be a list"),
        ({"versions": [0], "comparisons": 5}, "at least 2"),
        ({"versions": [0, 0], "comparisons": 5}, "versions: 0 is named twice"),
        ({"versions": [0, 7], "comparisons": 5}, "no policy version 7; its versions: 0, 1"),
        ({"versions": [0, 2**40], "comparisons": 5}, f"no policy version {2**40}"),
        ({"versions": [0, "1"], "comparisons": 5}, "'1' is not a policy version number"),
        ({"versions": [0, True], "comparisons": 5}, "True is not a policy version number"),
        ({"versions": [0, -1], "comparisons": 5}, "-1 is not a policy version number"),
        ({"versions": list(range(17)), "comparisons": 500}, "at most 16"),
        ({"versions": [0, 1]}, "comparisons must be an integer from 1"),
        ({"versions": [0, 1], "comparisons": 0}, "got 0"),
        ({"versions": [0, 1], "comparisons": 1001}, "to 1000; got 1001"),
        ({"versions": [0, 1], "comparisons": "5"}, "got '5'"),
        ({"versions": [0, 1], "comparisons": 2.5}, "got 2.5"),
    ],
)
def test_starting_an_arena_with_bad_input_is_a_400_naming_the_value(
    lake, make_user, api_client_for, body, named
):
    project, _ = lake
    client = api_client_for(make_user(staff=True))
    response = client.post(f"/api/projects/{project.slug}/arena/", body, format="json")
    assert response.status_code == 400, response.content
    assert named in response.json()["detail"]
    assert not Arena.objects.exists()


def test_three_versions_need_a_comparison_per_pair(lake, make_user, api_client_for):
    project, _ = lake
    _store_table_policy(project, 2, np.full((16, 4), 0.25))
    client = api_client_for(make_user(staff=True))
    url = f"/api/projects/{project.slug}/arena/"
    response = client.post(url, {"versions": [0, 1, 2], "comparisons": 2}, format="json")
    assert response.status_code == 400
    assert "from 3 (each pair of versions meets once)" in response.json()["detail"]
    response = client.post(url, {"versions": [2, 0, 1], "comparisons": 3}, format="json")
    assert response.status_code == 202


def test_a_started_arena_is_queued_with_its_location(lake, make_user, api_client_for):
    project, _ = lake
    staff = make_user(staff=True)
    response = api_client_for(staff).post(
        f"/api/projects/{project.slug}/arena/",
        {"versions": [1, 0], "comparisons": 6},
        format="json",
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert response["Location"] == f"/api/projects/lake/arena/{body['id']}/"
    assert body["status"] == "queued" and body["versions"] == [1, 0]
    assert body["comparisons"] == 6 and body["created_by"] == staff.username


@pytest.fixture
def world(lake, make_user, make_project):
    project, member = lake
    outsider, staff = make_user("outsider"), make_user(staff=True)
    reviewer, bare = make_user(role="reviewer"), make_user(role="manager")
    bare.groups.clear()  # staff status without any permission
    make_project("elsewhere", members=[outsider])
    arena = _start(project)
    users = {"anonymous": None, "outsider": outsider, "member": member, "staff": staff}
    users |= {"reviewer": reviewer, "bare": bare}
    return users, arena


def _all_staff(status: int) -> dict:
    return {"staff": status, "reviewer": status, "bare": status}


SEE = {**ANNOTATORS, "staff": 200, "reviewer": 200, "bare": 403}
START = {**ANNOTATORS, "staff": 202, "reviewer": 403, "bare": 403}
MISSING = {**ANNOTATORS, "staff": 404, "reviewer": 404, "bare": 403}  # permission first


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("get", "/api/projects/lake/arena/", SEE),
        ("post", "/api/projects/lake/arena/", START),
        ("get", "/api/projects/lake/arena/{arena}/", SEE),
        ("get", "/api/projects/lake/arena/999999/", MISSING),
        ("get", "/api/projects/nope/arena/", {**ANNOTATORS, "member": 404, **_all_staff(404)}),
    ],
)
@pytest.mark.parametrize("caller", ["anonymous", "outsider", "member", "staff", "reviewer", "bare"])
def test_arena_endpoints_answer_each_caller(world, api_client_for, method, path, expected, caller):
    users, arena = world
    client = api_client_for(users[caller])
    path = path.format(arena=arena.pk)
    if method == "post":
        response = client.post(path, {"versions": [0, 1], "comparisons": 4}, format="json")
    else:
        response = client.get(path)
    want = 401 if caller == "anonymous" else expected[caller]
    assert response.status_code == want, response.content[:300]
    if want >= 400:
        assert response.json()["detail"]


@pytest.mark.parametrize(
    ("caller", "page", "scores"),
    [
        ("anonymous", 302, 302),
        ("member", 403, 403),
        ("staff", 200, 404),  # no judgements to plot yet
        ("reviewer", 200, 404),
        ("bare", 403, 403),
    ],
)
def test_the_arena_page_is_for_staff_who_may_see_arenas(world, client, caller, page, scores):
    users, arena = world
    if users[caller] is not None:
        client.force_login(users[caller])
    response = client.get(f"/projects/lake/arena/{arena.pk}/")
    assert response.status_code == page
    if page == 302:
        assert "login" in response["Location"]
    assert client.get(f"/projects/lake/arena/{arena.pk}/scores.png").status_code == scores


def test_only_staff_who_may_start_arenas_start_one_from_the_dashboard_form(world, client):
    users, _ = world
    form = {"versions": "0, 1", "comparisons": "4"}
    client.force_login(users["reviewer"])
    assert client.post("/projects/lake/arena/", form).status_code == 403
    client.force_login(users["staff"])
    response = client.post("/projects/lake/arena/", form)
    newest = Arena.objects.filter(created_by=users["staff"]).get()
    assert (
        response.status_code == 302 and response["Location"] == f"/projects/lake/arena/{newest.pk}/"
    )
    response = client.post("/projects/lake/arena/", {"versions": "0, 9", "comparisons": "4"})
    assert response.status_code == 400 and b"no policy version 9" in response.content


def test_the_dashboard_summary_lists_arenas_for_those_who_may_see_them(world):
    users, arena = world
    summary = arena_selectors.arena_summary(arena.project, user=users["staff"])
    assert [row["arena"].pk for row in summary["arenas"]] == [arena.pk]
    assert summary["may_start"] and summary["versions"] == [0, 1]
    assert (
        arena_selectors.arena_summary(arena.project, user=users["reviewer"])["may_start"] is False
    )
    assert arena_selectors.arena_summary(arena.project, user=users["bare"]) is None
    request = RequestFactory().get("/projects/lake/dashboard/")
    request.user = users["staff"]
    html = render_to_string(
        "training/_arena_summary.html",
        {"project": arena.project, "arena_summary": summary},
        request=request,
    )
    assert f'href="/projects/lake/arena/{arena.pk}/"' in html and 'id="start-arena"' in html
    assert render_to_string("training/_arena_summary.html", {"arena_summary": None}).strip() == ""


def test_the_admin_shows_arenas_read_only(world, client, make_user):
    _, arena = world
    client.force_login(make_user(role="admin"))
    assert client.get("/admin/training/arena/").status_code == 200
    page = client.get(f"/admin/training/arena/{arena.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.get("/admin/training/arena/add/").status_code == 403


# --- sampling --------------------------------------------------------------------------------
def test_sampling_makes_ordinary_comparisons_of_balanced_pairs_in_random_order(lake):
    project, _ = lake
    arena = _start(project, comparisons=20)
    assert arena_service.sample_arena(arena_id=arena.pk) is True
    arena.refresh_from_db()
    assert arena.status == "sampled" and arena.progress == 1.0 and arena.attempts == 1
    comparisons = Comparison.objects.filter(project=project, data__arena=arena.pk)
    assert comparisons.count() == 20
    assert not comparisons.exclude(gold_ranking=None).exists()
    firsts = []
    for comparison in comparisons.prefetch_related("slots"):
        slots = sorted(comparison.slots.all(), key=lambda slot: slot.position)
        entries = {e.item_id: e.version for e in ArenaEntry.objects.filter(comparison=comparison)}
        assert sorted(entries.values()) == [0, 1]  # two distinct versions
        items = Item.objects.filter(pk__in=entries)
        assert len({item.data["episode_seed"] for item in items}) == 1  # one seed per pair
        assert [s.item_id for s in slots] == sorted(entries)  # created in the order shown
        firsts.append(entries[slots[0].item_id])
    assert 0 < sum(firsts) < 20  # the left one is not always the same version
    assert all("policy_version" not in item.data for item in Item.objects.filter(project=project))


def test_balanced_pairs_meet_equally_often():
    pairs = arena_service.balanced_pairs(4, 20, np.random.default_rng(0))
    counts = {pair: pairs.count(pair) for pair in set(pairs)}
    assert len(counts) == 6 and set(counts.values()) <= {3, 4}
    assert all(a < b for a, b in pairs)


def test_the_version_stays_out_of_what_annotators_receive(lake, api_client_for):
    project, member = lake
    arena = _start(project, comparisons=4)
    arena_service.sample_arena(arena_id=arena.pk)
    client = api_client_for(member)
    response = client.post(f"/api/projects/{project.slug}/next/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id", "project", "prompt", "items", "lease_expires_at", "progress", "feedback", "criteria"
    }  # fmt: skip
    shown = {"id", "text", "messages", "clip_url", "poster_url"}
    assert all(set(item) <= shown for item in body["items"])
    text = json.dumps(body)
    assert "version" not in text and "arena" not in text
    judged = client.post(
        f"/api/comparisons/{body['id']}/judgement/", {"choice": "left", "next": True}, format="json"
    )
    assert judged.status_code == 201
    assert "version" not in json.dumps(judged.json())
    # and the project's training status, which members read, does not mention arenas
    status = client.get(f"/api/projects/{project.slug}/training/").json()
    assert "arena" not in json.dumps(status)


def test_the_sampling_task_reaches_the_broker_on_the_train_queue(lake, settings):
    import uuid

    from rlhf_platform.celery import app

    project, _ = lake
    prefix = f"test-arena-{uuid.uuid4().hex[:8]}-"
    settings.CELERY_QUEUE_PREFIX = prefix  # a queue of this test's own on the real broker
    arena = _start(project)
    assert arena_service.enqueue_arena(arena.pk)
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(prefix + "train")
        try:
            message = queue.get(timeout=10)
            message.ack()
        finally:
            queue.queue.delete()
            queue.close()
    args, _kwargs, _embed = message.decode()
    assert message.headers["task"] == "training.sample_arena" and list(args) == [arena.pk]
    arena.refresh_from_db()
    assert arena.celery_task_id == message.headers["id"]
    assert tasks.sample_arena.name == "training.sample_arena"


def test_a_redelivered_sampling_task_does_nothing(lake):
    project, _ = lake
    arena = _start(project, comparisons=4)
    assert tasks.sample_arena.run(arena.pk) is True
    made = Comparison.objects.filter(project=project).count()
    files = sorted(default_storage.listdir("segments/lake")[1])
    assert tasks.sample_arena.run(arena.pk) is False  # the message again: nothing claimed
    assert Comparison.objects.filter(project=project).count() == made == 4
    assert sorted(default_storage.listdir("segments/lake")[1]) == files
    arena.refresh_from_db()
    assert arena.attempts == 1 and arena.status == "sampled"


def test_a_sampling_that_lost_its_claim_writes_nothing_and_deletes_its_files(lake, monkeypatch):
    project, _ = lake
    arena = _start(project, comparisons=4)
    sample = arena_service.SAMPLERS["tabular"]

    def taken_over(**kwargs):
        samples = sample(**kwargs)
        # Meanwhile the arena was re-queued and another worker claimed it.
        Arena.objects.filter(pk=arena.pk).update(attempts=2)
        return samples

    monkeypatch.setitem(arena_service.SAMPLERS, "tabular", taken_over)
    with pytest.raises(arena_service.ClaimLost):
        arena_service.sample_arena(arena_id=arena.pk)
    assert not Comparison.objects.filter(project=project).exists()
    assert not ArenaEntry.objects.exists()
    assert default_storage.listdir("segments/lake")[1] == []


def test_a_failed_sampling_marks_the_arena_failed_and_says_why(lake, monkeypatch):
    project, _ = lake
    webhooks.create_webhook(
        project=project, url="https://hooks.example/x", events=["arena.finished"]
    )
    arena = _start(project, comparisons=4)

    def broken(**kwargs):
        raise RuntimeError("the env exploded")

    monkeypatch.setitem(arena_service.SAMPLERS, "tabular", broken)
    with pytest.raises(RuntimeError):
        arena_service.sample_arena(arena_id=arena.pk)
    arena.refresh_from_db()
    assert arena.status == "failed" and "RuntimeError: the env exploded" in arena.error
    delivery = WebhookDelivery.objects.get(event="arena.finished")
    assert delivery.payload["data"]["status"] == "failed"


def test_the_periodic_check_resends_unsent_arenas_and_fails_ones_whose_worker_keeps_dying(
    lake, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    project, _ = lake
    sent = []
    monkeypatch.setattr(arena_service, "enqueue_arena", lambda pk: sent.append(pk) or True)
    unsent = _start(project)
    Arena.objects.filter(pk=unsent.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    stale = _start(project)
    long_ago = timezone.now() - timedelta(hours=1)
    Arena.objects.filter(pk=stale.pk).update(status="running", attempts=1, heartbeat_at=long_ago)
    dying = _start(project)
    Arena.objects.filter(pk=dying.pk).update(status="running", attempts=3, heartbeat_at=long_ago)
    assert arena_service.check_arenas() == {"finished": 0, "sent": 2, "failed": 1}
    assert sorted(sent) == sorted([unsent.pk, stale.pk])
    assert Arena.objects.get(pk=stale.pk).status == "queued"
    assert "stopped reporting 3 times" in Arena.objects.get(pk=dying.pk).error


def test_an_arena_judged_to_overlap_finishes_once_and_emits_arena_finished(
    lake, api_client_for, make_user
):
    project, _ = lake
    webhooks.create_webhook(
        project=project, url="https://hooks.example/x", events=["arena.finished"]
    )
    arena = _start(project, comparisons=12)
    arena_service.sample_arena(arena_id=arena.pk)
    assert arena_service.check_arenas()["finished"] == 0  # nothing judged yet
    assert judge_all(project) == 12  # overlap 1: the rational teacher judges each once
    assert arena_service.check_arenas()["finished"] == 1
    assert arena_service.check_arenas()["finished"] == 0  # once
    arena.refresh_from_db()
    assert arena.status == "finished" and arena.finished_at is not None
    (delivery,) = WebhookDelivery.objects.filter(event="arena.finished")
    data = delivery.payload["data"]
    assert data["arena_id"] == arena.pk and data["status"] == "finished"
    assert data["leaderboard"] == arena.result["leaderboard"]
    assert data["leaderboard"][0]["version"] == 1  # the path to the goal beats random moves
    body = api_client_for(make_user(staff=True)).get(f"/api/projects/lake/arena/{arena.pk}/").json()
    assert body["status"] == "finished" and body["judging"] == {"comparisons": 12, "complete": 12}
    assert body["leaderboard"] == arena.result["leaderboard"]
    assert sum(row["wins"] + row["ties"] for row in body["leaderboard"]) >= 12


def test_reading_a_judged_arena_finishes_it_and_the_page_answers_the_question(
    lake, client, make_user
):
    project, _ = lake
    arena = _start(project, comparisons=12)
    arena_service.sample_arena(arena_id=arena.pk)
    judge_all(project)
    client.force_login(make_user(role="reviewer"))
    response = client.get(f"/projects/lake/arena/{arena.pk}/", {"version": "1", "other": "0"})
    assert response.status_code == 200
    arena.refresh_from_db()
    assert arena.status == "finished"
    question = response.context["question"]
    assert question["answer"] == "yes" and question["ci_low"] > 0
    assert b'data-answer="yes"' in response.content
    reverse = client.get(f"/projects/lake/arena/{arena.pk}/", {"version": "0", "other": "1"})
    assert reverse.context["question"]["answer"] == "no"
    bad = client.get(f"/projects/lake/arena/{arena.pk}/", {"version": "0", "other": "0"})
    assert "Choose two different versions" in bad.context["question_error"]
    png = client.get(f"/projects/lake/arena/{arena.pk}/scores.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_a_trajectory_arena_renders_clips_that_annotators_see_without_the_version(
    db, media_root, make_user, make_project, api_client_for, one_torch_thread
):
    from training.ml.control.policies import policy_for_env

    member = make_user()
    config = {**PENDULUM, "segment_length": 5, "fps": 5, "render_clips": True}
    project = make_project(kind="trajectory", config=config, members=[member])
    for version in (0, 1):
        _store_control_policy(project, version, policy_for_env("Pendulum-v1", seed=version))
    arena = _start(project, comparisons=2)
    assert arena_service.sample_arena(arena_id=arena.pk)
    items = Item.objects.filter(project=project)
    assert items.count() == 4 and all(item.clip and item.poster for item in items)
    shown = api_client_for(member).post(f"/api/projects/{project.slug}/next/").json()
    assert all(set(item) == {"id", "clip_url", "poster_url"} for item in shown["items"])
    assert "version" not in json.dumps(shown)


# A language model too small to say anything sensible, built in a fraction of a second.
MICRO_LM = {"vocab_size": 300, "n_layer": 1, "n_head": 1, "n_embd": 16, "n_positions": 128}
MICRO_LM |= {"steps": 2, "batch_size": 4, "learning_rate": 1e-2, "seed": 0}


def test_a_text_arena_answers_one_prompt_with_a_response_per_version(
    db, tmp_path, media_root, make_project, one_torch_thread
):
    from training.ml.lm import lm
    from training.ml.lm.demo_lm import build_demo_lm, read_prompts

    build_demo_lm(out_dir=tmp_path / "lm", **MICRO_LM)
    config = {"model_dir": str(tmp_path / "lm"), "prompts": read_prompts()[:3]}
    config |= {"max_new_tokens": 6, "seed": 1}
    project = make_project(kind="text", config=config, round_size=100_000)
    model, tokenizer = lm.load_causal_lm(config["model_dir"])
    name = artifacts.store_directory(
        project, "policy", lambda directory: lm.save_policy(model, tokenizer, directory)
    )
    for version in (0, 1):
        Policy.objects.create(project=project, version=version, checkpoint=name)
    arena = _start(project, comparisons=4)
    assert arena_service.sample_arena(arena_id=arena.pk)
    assert Comparison.objects.filter(project=project).count() == 4
    for comparison in Comparison.objects.filter(project=project):
        entries = ArenaEntry.objects.filter(comparison=comparison).select_related("item")
        assert sorted(e.version for e in entries) == [0, 1]
        assert len({e.item.prompt for e in entries}) == 1
        assert entries[0].item.prompt in config["prompts"]


# --- the Must-show: a trained policy beats an untrained one ------------------------------------
PENDULUM = {"env_id": "Pendulum-v1", "segment_length": 50, "render_clips": False, "seed": 0}
# A few seconds of PPO on Pendulum's own reward (Schulman et al. 2017): far from solving it,
# but over the first 50 steps of an episode it already does better than its start: it won
# 196 and 198 of 200 such pairs with PPO seeds 0 and 7 (161 and 167 over 25 steps).
PPO_STEPS = 16_384
PPO_SETTINGS = {"num_envs": 8, "num_steps": 64, "learning_rate": 3e-3, "gamma": 0.9}
PPO_SETTINGS |= {"update_epochs": 10, "num_minibatches": 4, "kl_coef": 0.0, "kl_target": None}


def _store_control_policy(project, version: int, policy) -> Policy:
    from training.ml.control import checkpoints

    name = artifacts.store_written_file(
        project, "policy", ".pt", lambda path: checkpoints.save_checkpoint(policy, path)
    )
    return Policy.objects.create(project=project, version=version, checkpoint=name)


@pytest.fixture
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_a_blind_arena_ranks_a_trained_pendulum_policy_above_an_untrained_one(
    db, media_root, make_user, make_project, api_client_for, one_torch_thread, capsys
):
    from training.ml.control.policies import policy_for_env
    from training.ml.control.ppo import PPOConfig, train_ppo

    teacher_account = make_user("sim-rational")
    project = make_project(
        "pendulum", kind="trajectory", config=PENDULUM, members=[teacher_account], round_size=10**5
    )
    _store_control_policy(project, 0, policy_for_env("Pendulum-v1", seed=0))
    trained = policy_for_env("Pendulum-v1", seed=0)
    train_ppo(
        env_id="Pendulum-v1",
        policy=trained,
        total_steps=PPO_STEPS,
        config=PPOConfig(**PPO_SETTINGS),
        seed=0,
    )
    _store_control_policy(project, 1, trained)

    staff = api_client_for(make_user(staff=True))
    response = staff.post(
        "/api/projects/pendulum/arena/", {"versions": [0, 1], "comparisons": 60}, format="json"
    )
    assert response.status_code == 202, response.json()
    arena_id = response.json()["id"]
    assert arena_service.sample_arena(arena_id=arena_id)  # what the worker does

    # A rational synthetic teacher judges every comparison through the annotators' API.
    annotator = api_client_for(teacher_account)
    teacher, rng = make_teacher("rational"), np.random.default_rng(0)
    judged = 0
    while (lease := annotator.post("/api/projects/pendulum/next/")).status_code == 200:
        shown = lease.json()
        items = {i.pk: i for i in Item.objects.filter(pk__in=[s["id"] for s in shown["items"]])}
        answer = teacher_answer(project, [items[s["id"]] for s in shown["items"]], teacher, rng)
        url = f"/api/comparisons/{shown['id']}/judgement/"
        assert annotator.post(url, answer, format="json").status_code == 201
        judged += 1
    assert judged == 60

    body = staff.get(f"/api/projects/pendulum/arena/{arena_id}/").json()
    with capsys.disabled():
        print(f"\narena leaderboard: {body['leaderboard']}\npairwise: {body['pairwise']}")
    assert body["status"] == "finished"
    first, second = body["leaderboard"]
    assert first["version"] == 1 and second["version"] == 0
    assert first["ci_low"] <= first["score"] <= first["ci_high"]
    (lead,) = body["pairwise"]
    assert (lead["version"], lead["other"]) == (1, 0)
    assert lead["ci_low"] > 0 and lead["better"] is True  # the interval excludes zero
