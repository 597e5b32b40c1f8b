"""run_loop and simulate_annotators from the command line, and the dashboard they feed."""

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Judgement
from training import artifacts
from training.ml.control import checkpoints
from training.models import Policy, RewardModel, Run

TINY = {
    "env_id": "Pendulum-v1",
    "segment_length": 10,
    "algorithm": "ppo",
    "env_steps_per_round": 512,
    "comparisons_per_round": 5,
    "ensemble_size": 2,
    "render_clips": False,
    "seed": 3,
    "eval_episodes": 2,
    "ppo": {"num_envs": 4, "num_steps": 128, "num_minibatches": 4},  # small, for speed
}


@pytest.fixture
def looped_project(db, media_root, make_project):
    project = make_project("loop", kind="trajectory", config=TINY, round_size=10_000)
    call_command("run_loop", project="loop", rounds=3, teacher="rational")
    return project


def test_run_loop_with_a_teacher_runs_rounds_and_judges_their_comparisons(looped_project):
    rounds = Run.objects.filter(project=looped_project, kind="round").order_by("number")
    assert [r.status for r in rounds] == ["succeeded"] * 3
    assert Judgement.objects.filter(project=looped_project).count() == 15  # 5 per round
    assert RewardModel.objects.filter(project=looped_project).count() == 2  # rounds 2 and 3
    assert Policy.objects.filter(project=looped_project).count() == 3  # initial, then 2
    assert not Run.objects.filter(project=looped_project, kind="round", trigger="judgements")


def test_training_continues_across_rounds_with_the_optimiser_state_in_the_checkpoint(
    looped_project,
):
    def adam_steps(version: int) -> float:
        policy = Policy.objects.get(project=looped_project, version=version)
        with artifacts.local_copy(policy.checkpoint) as path:
            state = checkpoints.load_training_state(path)
        return float(next(iter(state.optimizer["state"].values()))["step"])

    # Rounds 2 and 3 train the same number of updates; round 3 starts where round 2 ended.
    assert adam_steps(2) == 2 * adam_steps(1) > 0


def test_dashboard_plots_the_rounds_for_staff_only(looped_project, client, make_user):
    annotator = make_user()
    client.force_login(annotator)
    assert client.get("/projects/loop/dashboard/").status_code == 302  # to the admin login
    client.force_login(make_user(staff=True))
    page = client.get("/projects/loop/dashboard/")
    assert page.status_code == 200
    assert b"Judgements per annotator" in page.content and b"sim-rational" in page.content
    assert b'id="curves"' in page.content
    png = client.get("/projects/loop/dashboard/curves.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


def test_simulate_annotators_judges_through_the_services(db, media_root, make_project):
    project = make_project("sim", kind="trajectory", config=TINY, round_size=10_000)
    call_command("run_loop", project="sim", rounds=1)  # no teacher: comparisons only
    call_command("simulate_annotators", project="sim", teacher="mistake", judgements=3)
    judgements = Judgement.objects.filter(project=project)
    assert judgements.count() == 3
    assert {j.annotator.username for j in judgements} == {"sim-mistake"}


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("run_loop", {"project": "nope", "rounds": 1}, "No project 'nope'"),
        (
            "simulate_annotators",
            {"project": "sim", "teacher": "equal", "judgements": 1},
            "needs equal_threshold",
        ),
        ("run_loop", {"project": "sim", "rounds": 0}, "--rounds must be at least 1"),
    ],
)
def test_commands_refuse_bad_input_with_a_message(db, make_project, command, options, message):
    make_project("sim", kind="trajectory", config=TINY)
    with pytest.raises(CommandError, match=message):
        call_command(command, **options)


def test_run_loop_on_a_text_project_says_why_it_cannot_train(db, make_project):
    make_project("words")
    with pytest.raises(CommandError, match=r"no config\.model_dir"):
        call_command("run_loop", project="words", rounds=1)
