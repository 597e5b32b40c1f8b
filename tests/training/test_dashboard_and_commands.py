"""run_loop and simulate_annotators from the command line, and the dashboard they feed."""

import io
import re
from typing import NamedTuple

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Comparison, Judgement, Project
from training import artifacts, selectors
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


class Looped(NamedTuple):
    project: Project
    output: str  # what run_loop printed


@pytest.fixture
def looped(db, media_root, make_project) -> Looped:
    project = make_project("loop", kind="trajectory", config=TINY, round_size=10_000)
    out = io.StringIO()
    call_command("run_loop", project="loop", rounds=3, teacher="rational", stdout=out)
    return Looped(project, out.getvalue())


@pytest.fixture
def looped_project(looped) -> Project:
    return looped.project


def test_run_loop_with_a_teacher_makes_every_round_train_on_judgements(looped):
    looped_project = looped.project
    rounds = Run.objects.filter(project=looped_project, kind="round").order_by("number")
    assert [r.status for r in rounds] == ["succeeded"] * 3  # --rounds 3: three rounds
    # the first 5 were made and judged before round 1; round 3's 5 wait for the next round
    first = Run.objects.get(project=looped_project, kind="generate_comparisons", round=None)
    assert first.number == 0 and first.metrics["comparisons/created"] == 5
    fits = [r.steps.get(kind="fit_reward_model").metrics for r in rounds]
    assert [f["reward/n_pairs"] for f in fits] == [5, 10, 15]
    assert not any("reward/skipped" in f for f in fits)
    policies = [r.steps.get(kind="improve_policy").metrics for r in rounds]
    assert not any("policy/skipped" in p for p in policies)
    assert RewardModel.objects.filter(project=looped_project).count() == 3
    assert Policy.objects.filter(project=looped_project).count() == 4  # initial, then 3
    assert Judgement.objects.filter(project=looped_project).count() == 15
    assert Comparison.objects.filter(project=looped_project, status="open").count() == 5
    assert not Run.objects.filter(project=looped_project, kind="round", trigger="judgements")

    # and it prints each round's key metrics of a trajectory project
    lines = looped.output.splitlines()
    assert "first comparisons: 5 from the initial policy" in lines
    assert lines.count("sim-rational judged 5 comparisons") == 3
    reports = [line for line in lines if line.startswith("round ")]
    assert len(reports) == 3
    for number, line in enumerate(reports, start=1):
        assert line.startswith(f"round {number}: succeeded; reward/n_pairs={5 * number}, ")
        assert re.search(r"reward/heldout_accuracy=[01]\.\d{3}", line), line
        assert re.search(r"charts/true_return=-?\d+\.\d{2} ± \d+\.\d{2}", line), line
        assert line.endswith("comparisons/created=5")


def test_a_second_run_loop_judges_what_is_open_and_makes_no_first_comparisons(looped_project):
    from core.errors import Conflict
    from training import services

    with pytest.raises(Conflict, match="has comparisons already"):
        services.start_first_comparisons(project=looped_project, trigger="test")
    call_command("run_loop", project="loop", rounds=1, teacher="rational", stdout=io.StringIO())
    firsts = Run.objects.filter(project=looped_project, kind="generate_comparisons", round=None)
    assert firsts.count() == 1
    fourth = Run.objects.get(project=looped_project, kind="round", number=4)
    assert fourth.steps.get(kind="fit_reward_model").metrics["reward/n_pairs"] == 20


def test_training_continues_across_rounds_with_the_optimiser_state_in_the_checkpoint(
    looped_project,
):
    def adam_steps(version: int) -> float:
        policy = Policy.objects.get(project=looped_project, version=version)
        with artifacts.local_copy(policy.checkpoint) as path:
            state = checkpoints.load_training_state(path)
        return float(next(iter(state.optimizer["state"].values()))["step"])

    # Each round trains the same number of updates; round 2 starts where round 1 ended.
    assert adam_steps(3) == 3 * adam_steps(1) > 0


def test_dashboard_plots_the_rounds_for_staff(looped_project, client, make_user):
    client.force_login(make_user(staff=True))
    page = client.get("/projects/loop/dashboard/")
    assert page.status_code == 200
    assert b"Judgements per annotator" in page.content and b"sim-rational" in page.content
    assert b'id="curves"' in page.content and b'id="no-curves"' not in page.content
    headings = [c.label for c in page.context["columns"]]
    assert headings == [
        "Pairs fitted",
        "Reward model held-out accuracy",
        "True return",
        "Mean learned reward",
        "Comparisons made",
    ]
    assert [row["cells"][0] for row in page.context["rows"]] == ["5", "10", "15"]
    assert "–" not in str(page.context["rows"])
    png = client.get("/projects/loop/dashboard/curves.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "path", ["/projects/loop/dashboard/", "/projects/loop/dashboard/curves.png"]
)
def test_an_annotator_gets_a_403_page_on_the_dashboard_not_the_admin_login(
    db, make_project, make_user, client, path
):
    make_project("loop", kind="trajectory", config=TINY)
    client.force_login(make_user())
    response = client.get(path)
    assert response.status_code == 403
    assert b"The project dashboard is for staff" in response.content


def test_an_anonymous_visitor_is_sent_to_the_site_login_for_the_dashboard(db, make_project, client):
    make_project("loop", kind="trajectory", config=TINY)
    response = client.get("/projects/loop/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/projects/loop/dashboard/"


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


# --- a text project --------------------------------------------------------------------------
def test_run_loop_and_the_dashboard_show_a_text_rounds_dpo_metrics(
    db, tmp_path_factory, media_root, make_project, make_user, client
):
    from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir

    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(4),
        "k": 3,  # rankings: some order even where the lexicon scores tie
        "max_new_tokens": 8,
        "comparisons_per_round": 4,
        "algorithm": "dpo",
        "seed": 1,
    }
    make_project("words", kind="text", config=config, round_size=10_000)
    out = io.StringIO()
    call_command("run_loop", project="words", rounds=1, teacher="rational", stdout=out)

    (report,) = [line for line in out.getvalue().splitlines() if line.startswith("round ")]
    assert re.match(
        r"round 1: succeeded; rewards/accuracies=[01]\.\d{3}, rewards/margins=-?\d+\.\d{3}, "
        r"logps/chosen=-\d+\.\d{2}, loss=\d+\.\d{3}, "
        r"teacher/win_rate=[01]\.\d{3} ± 0\.\d{3}, kl/sequence=-?\d+\.\d{3}, "
        r"teacher/mean_score=-?\d+\.\d{3}, comparisons/created=4$",
        report,
    ), report

    client.force_login(make_user(staff=True))
    page = client.get("/projects/words/dashboard/")
    assert page.status_code == 200
    assert [c.label for c in page.context["columns"]] == [
        "DPO reward accuracy",
        "DPO reward margin",
        "log p(chosen)",
        "DPO loss",
        "Teacher win rate over the reference",
        "Sequence KL to the reference",
        "Teacher score of samples",
        "Comparisons made",
    ]
    (row,) = page.context["rows"]
    assert row["round"] == 1 and None not in row["cells"]
    metrics = page.context["history"][0]
    win_rate = f"{metrics['teacher/win_rate']:.3f} ± {metrics['teacher/win_rate_se']:.3f}"
    assert row["cells"][4] == win_rate and row["cells"][5] == f"{metrics['kl/sequence']:.3f}"
    assert win_rate in report and f"kl/sequence={metrics['kl/sequence']:.3f}" in report
    rounds_table = page.content.decode().split('id="rounds"')[1].split("</table>")[0]
    assert "–" not in rounds_table and "<td>4</td>" in rounds_table
    assert b'id="curves"' in page.content
    plotted = [metric for metric, *_ in selectors.plotted_series(page.context["history"])]
    assert {"teacher/win_rate", "kl/sequence"} <= set(plotted)
    assert 'Words <small class="progress">· Text (language-model responses)</small>' in (
        page.content.decode()
    )


def _finished_round(project, number: int, **metrics_by_step) -> Run:
    round_run = Run.objects.create(
        project=project, kind="round", number=number, status="succeeded", trigger="test"
    )
    for kind in ("fit_reward_model", "improve_policy", "generate_comparisons"):
        Run.objects.create(
            project=project,
            kind=kind,
            round=round_run,
            number=number,
            status="succeeded",
            metrics=metrics_by_step.get(kind, {}),
        )
    return round_run


def test_the_dashboard_says_why_there_is_nothing_to_plot_after_a_round_that_trained_nothing(
    db, make_project, make_user, client
):
    project = make_project("words", kind="text")
    client.force_login(make_user(staff=True))
    empty = client.get("/projects/words/dashboard/").content.decode()
    assert "No round has succeeded yet." in empty and 'id="rounds"' not in empty

    _finished_round(
        project,
        1,
        fit_reward_model={"reward/skipped": 1},
        improve_policy={"policy/skipped": 1},
        generate_comparisons={"comparisons/created": 6},
    )
    page = client.get("/projects/words/dashboard/")
    html = page.content.decode()
    assert "No round has succeeded yet." not in html
    assert "Nothing to plot yet" in html and 'id="curves"' not in html
    assert [c.label for c in page.context["columns"]] == ["Comparisons made"]
    assert page.context["rows"] == [{"round": 1, "cells": ["6"]}]
    assert client.get("/projects/words/dashboard/curves.png").status_code == 404


@pytest.mark.parametrize("rounds", [[1], [1, 2], [1, 2, 3], list(range(1, 31))])
def test_the_learning_curves_have_integer_round_ticks_only(rounds):
    from training.plots import learning_curves_figure

    series = [("kl", "KL", rounds, [0.1] * len(rounds), None)]
    (axes,) = learning_curves_figure(series).axes
    low, high = axes.get_xlim()
    shown = [tick for tick in axes.get_xticks() if low <= tick <= high]
    assert shown and all(float(tick).is_integer() for tick in shown)
    if len(rounds) <= 3:
        assert shown == rounds  # each round its own tick, and nothing between
