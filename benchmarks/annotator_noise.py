"""Annotator noise: what two careless annotators of six cost, and how much of it the
reliability weighting of training/ml/reliability.py wins back.

Six simulated annotators judge through the platform's real services (a project in
PostgreSQL, simulate_panel, the kinds' own steps): four rational teachers and two mistake
teachers that flip the rational answer with probability ε = 0.4 (training.ml.teachers.
annotator_panel). Each comparison is judged once (overlap 1), so a third of the labels are
nearly coin flips. Conditions, on the same comparisons:
  clean     the six annotators all rational (the labels the noisy two would have given had
            they been careful): the reference that defines "the accuracy lost";
  noisy     4 rational + 2 mistake teachers, the reward model fitted as before;
  weighted  the same judgements, config reliability enabled: each annotator's flip rate
            learned with the reward model by EM, each label weighted by the posterior that
            it is right;
  dropped   the noisy judgements with the two mistake teachers' deleted: an oracle that
            knows who is careless (shown for scale).
Measured:
  pendulum  Pendulum-v1 segments from the initial policy; the reward ensemble's accuracy on
            held-out pairs of fresh segments, against the TRUE return's order.
  loop      a few rounds of the Pendulum loop (PPO) per condition, labels judged by the
            panel before each round: the final policy's true return. Small budgets (see
            --loop-steps): Pendulum needs ~200k steps to be solved, so these returns say
            little beyond "no harm".
  text      the text demo: the demo LM (manage.py build_demo_lm; built here if missing)
            samples pairs of answers to demo prompts, the sentiment-lexicon teacher judges;
            the LM reward model's accuracy against the lexicon's order on held-out prompts,
            and DPO (the demo's algorithm) per condition: its implicit reward's accuracy on
            those pairs and the trained policy's win rate against the initial one, judged by
            the lexicon (a tie counts half).
recovered = (weighted − noisy) / (clean − noisy): the share of the accuracy lost to the
two noisy annotators that the weighting wins back (the issue asks for at least ½).
The recovered ε of every annotator is listed beside the true one (the prior pulls an
estimate towards 0.1 in proportion to 10 / (labels + 10)).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/annotator_noise.py   # 13 min on 2 cores shared with other jobs
    .venv/bin/python benchmarks/annotator_noise.py --parts pendulum --seeds 0,1

Each job is a fresh process (at most --parallel at once, one torch thread each) on a
database of its own beside DATABASE_URL's (<name>_annotator_noise). Prints a table, writes
benchmarks/results/annotator_noise.json and annotator_noise.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ENV_ID = "Pendulum-v1"
EPSILON = 0.4
CONDITIONS = ("clean", "noisy", "weighted", "dropped")
TEXT_TRAIN_PROMPTS = 30  # of the demo's 40 prompts; the other 10 are held out


# --- inside a job's process ---------------------------------------------------------------------
def _panel(noisy: bool):
    from training.ml.teachers import annotator_panel

    if noisy:
        return annotator_panel(rational=4, mistaken=2, epsilon=EPSILON)
    # the same six accounts, all careful: the labels the mistake teachers would have given
    clean = annotator_panel(rational=6, mistaken=0, epsilon=0.0)
    names = [name for name, _ in annotator_panel(rational=4, mistaken=2, epsilon=EPSILON)]
    return [(name, teacher) for name, (_, teacher) in zip(names, clean, strict=True)]


def _project(kind: str, config: dict, tag: str):
    from labeling import services

    slug = f"an-{tag}-{uuid.uuid4().hex[:6]}"
    return services.create_project(slug=slug, name=slug, kind=kind, round_size=10**9, config=config)


def _first_comparisons(project) -> None:
    from training import services
    from training.runner import run_step_here

    step = run_step_here(services.start_first_comparisons(project=project, trigger="bench"))
    assert step.status == "succeeded", step.error


def _set_config(project, **changes) -> None:
    from labeling.config import validate_project_config

    project.config = validate_project_config(project.kind, {**project.config, **changes})
    project.save(update_fields=["config"])


def _step(project, kind: str):
    """Run one step of ``kind`` outside any round, as the kinds run it in a round."""
    from django.db.models import Max

    from training.models import Run
    from training.runner import run_step_here

    number = (Run.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
    step = run_step_here(
        Run.objects.create(project=project, kind=kind, number=number, trigger="bench")
    )
    assert step.status == "succeeded", step.error
    return step


def _estimates(reward_row) -> dict[str, float]:
    """{annotator name: estimated ε} of a reward model's fit."""
    from django.contrib.auth import get_user_model

    from training.kinds.reliability import ANNOTATORS_METRIC

    found = reward_row.metrics.get(ANNOTATORS_METRIC, {})
    names = dict(get_user_model().objects.filter(pk__in=found).values_list("pk", "username"))
    return {names[int(pk)].removeprefix("sim-"): e["flip_rate"] for pk, e in found.items()}


def _drop_mistaken(project) -> None:
    from labeling.models import Judgement

    mistaken = Judgement.objects.filter(annotator__username__startswith="sim-mistake")
    mistaken.filter(project=project).delete()


def pendulum_accuracy(*, seed: int, labels: int, test_pairs: int) -> dict:
    """Held-out accuracy against the true order, per condition, on one batch of labels."""
    import torch

    from training import artifacts
    from training.ml.control import checkpoints
    from training.ml.control.reward_models import segments_to_tensors
    from training.ml.control.rollouts import collect_segments
    from training.models import Policy, RewardModel
    from training.simulation import simulate_panel

    config = {
        "env_id": ENV_ID,
        "comparisons_per_round": labels,
        "selection": "random",
        "render_clips": False,
        "seed": seed,
    }
    projects = {noisy: _project("trajectory", config, f"pend{seed}") for noisy in (True, False)}
    for noisy, project in projects.items():
        _first_comparisons(project)  # the same segments in both: same config and seed
        simulate_panel(project=project, panel=_panel(noisy), limit=None, seed=seed)

    with artifacts.local_copy(artifacts.latest(Policy, projects[True]).checkpoint) as path:
        initial = checkpoints.load_policy(path)
    test = collect_segments(
        env_id=ENV_ID,
        policy=initial,
        n_segments=2 * test_pairs,
        segment_length=25,
        seed=50_000 + seed,
    )
    firsts, seconds = test[0::2], test[1::2]
    truth = np.array([a.true_return > b.true_return for a, b in zip(firsts, seconds, strict=True)])

    def accuracy(project) -> float:
        with artifacts.local_copy(artifacts.latest(RewardModel, project).checkpoint) as path:
            ensemble = checkpoints.load_reward_ensemble(path)
        with torch.no_grad():
            a, b = (
                ensemble.segment_returns(*segments_to_tensors(s, device="cpu")).mean(0)
                for s in (firsts, seconds)
            )
        return float(((a > b).numpy() == truth).mean())

    found: dict = {"accuracy": {}}
    for condition, project, enabled in (
        ("clean", projects[False], False),
        ("noisy", projects[True], False),
        ("weighted", projects[True], True),
    ):
        _set_config(project, reliability={"enabled": enabled})
        _step(project, "fit_reward_model")
        found["accuracy"][condition] = accuracy(project)
        if enabled:
            found["flip_rates"] = _estimates(artifacts.latest(RewardModel, project))
    _drop_mistaken(projects[True])
    _set_config(projects[True], reliability={"enabled": False})
    _step(projects[True], "fit_reward_model")
    found["accuracy"]["dropped"] = accuracy(projects[True])
    return found


def pendulum_loop(*, seed: int, condition: str, labels: int, rounds: int, steps: int) -> dict:
    """The loop for ``rounds`` rounds; the last one's policy's true return."""
    from training import services
    from training.models import Run
    from training.runner import run_round_here
    from training.simulation import simulate_panel

    config = {
        "env_id": ENV_ID,
        "comparisons_per_round": labels,
        "render_clips": False,
        "env_steps_per_round": steps,
        "eval_episodes": 10,
        "seed": seed,
        "reliability": {"enabled": condition == "weighted"},
    }
    project = _project("trajectory", config, f"loop{seed}")
    _first_comparisons(project)
    for _ in range(rounds):
        simulate_panel(project=project, panel=_panel(condition != "clean"), limit=None, seed=seed)
        round_run = run_round_here(
            services.start_round(project=project, trigger="bench", enqueue=False)
        )
        assert round_run.status == "succeeded", round_run.error
    last = Run.objects.get(project=project, kind="improve_policy", number=rounds)
    return {
        "true_return": last.metrics["charts/true_return"],
        "true_return_se": last.metrics["charts/true_return_se"],
    }


def _demo_lm_dir() -> Path:
    from demo import lm_build
    from training.ml.lm.demo_lm import DEMO_CORPUS, build_demo_lm

    path = lm_build.model_dir()
    if not lm_build.is_built(path):
        build_demo_lm(corpus_path=DEMO_CORPUS, out_dir=path, seed=0)
    return path


def text_demo(
    *, seed: int, labels: int, test_samples: int, max_new_tokens: int, dpo_epochs: int | None
) -> dict:
    """The text demo: the reward model's and DPO's accuracy against the lexicon's order on
    held-out prompts, and the DPO policy's win rate, per condition."""
    from training import artifacts
    from training.ml.lm import lm
    from training.ml.lm.demo_lm import read_prompts
    from training.ml.lm.lm_reward import load_lm_reward_model
    from training.ml.lm.text_teacher import lexicon_score, load_lexicon
    from training.models import Policy, RewardModel
    from training.simulation import simulate_panel

    model_dir = _demo_lm_dir()
    prompts = read_prompts()
    config = {
        "model_dir": str(model_dir),
        "prompts": prompts[:TEXT_TRAIN_PROMPTS],
        "k": 2,
        "top_p": 0.95,
        "max_new_tokens": max_new_tokens,
        "algorithm": "ppo",  # for the reward-model fits; the DPO steps switch to "dpo"
        "comparisons_per_round": labels,
        "seed": seed,
        "dpo": {} if dpo_epochs is None else {"epochs": dpo_epochs},  # else the step's 2
    }
    sampling = {"tokenizer": None, "top_p": 0.95, "max_new_tokens": max_new_tokens}
    projects = {noisy: _project("text", config, f"text{seed}") for noisy in (True, False)}
    for noisy, project in projects.items():
        _first_comparisons(project)  # the same samples in both: same config and seed
        simulate_panel(project=project, panel=_panel(noisy), limit=None, seed=seed)

    lexicon = load_lexicon()
    base, tokenizer = lm.load_causal_lm(model_dir)
    held_out = prompts[TEXT_TRAIN_PROMPTS:]
    test_prompts = [held_out[i % len(held_out)] for i in range(test_samples)]
    sampling["tokenizer"] = tokenizer
    samples = lm.sample_responses(
        model=base, prompts=test_prompts, k=2, seed=70_000 + seed, **sampling
    )
    scores = np.array([[lexicon_score(text, lexicon) for text in pair] for pair in samples])
    decided = scores[:, 0] != scores[:, 1]  # the lexicon's order; its ties are left out
    test = [
        (prompt, a, b)
        for prompt, (a, b), keep in zip(test_prompts, samples, decided, strict=True)
        if keep
    ]
    truth = scores[decided, 0] > scores[decided, 1]
    test_prompt_of = [prompt for prompt, _, _ in test]

    def logps(model, k: int):
        """log π(y|x) of the first (k = 1) or second (k = 2) response of each test pair."""
        responses = [pair[k] for pair in test]
        return lm.sequence_logprobs(
            model=model, tokenizer=tokenizer, prompts=test_prompt_of, responses=responses
        )

    base_logps = [logps(base, 1), logps(base, 2)]

    def answers(model) -> np.ndarray:
        """The lexicon's score of one answer of ``model`` to each test prompt."""
        found = lm.sample_responses(
            model=model, prompts=test_prompts, k=1, seed=90_000 + seed, **sampling
        )
        return np.array([lexicon_score(r[0], lexicon) for r in found])

    initial = answers(base)

    def rm_accuracy(project) -> float:
        with artifacts.local_directory(artifacts.latest(RewardModel, project).checkpoint) as path:
            reward_model = load_lm_reward_model(path)
        margin = reward_model.score(test_prompt_of, [a for _, a, _ in test]) - reward_model.score(
            test_prompt_of, [b for _, _, b in test]
        )
        return float(((margin > 0).numpy() == truth).mean())

    def dpo(project) -> dict:
        """DPO from the initial policy, as the text kind's step runs it; then measured and
        its policy version removed, so the next DPO starts from the initial policy again."""
        _set_config(project, algorithm="dpo")
        _step(project, "improve_policy")
        row = artifacts.latest(Policy, project)
        with artifacts.local_directory(row.checkpoint) as path:
            policy, _ = lm.load_policy(path)
        # the implicit reward β log π/π_ref (Rafailov et al. 2023, eq. 5), β aside
        implicit = [logps(policy, k) - base_logps[k - 1] for k in (1, 2)]
        trained = answers(policy)
        Policy.objects.filter(project=project, version__gt=0).delete()
        _set_config(project, algorithm="ppo")
        return {
            "accuracy": float(((implicit[0] > implicit[1]).numpy() == truth).mean()),
            "win_rate": float(np.mean((trained > initial) + 0.5 * (trained == initial))),
            "mean_score": float(trained.mean()),
        }

    found: dict = {"rm_accuracy": {}, "dpo": {}, "n_test_pairs": len(test)}
    for condition, project, enabled in (
        ("clean", projects[False], False),
        ("noisy", projects[True], False),
        ("weighted", projects[True], True),
    ):
        _set_config(project, reliability={"enabled": enabled})
        _step(project, "fit_reward_model")
        found["rm_accuracy"][condition] = rm_accuracy(project)
        if enabled:
            found["flip_rates"] = _estimates(artifacts.latest(RewardModel, project))
        found["dpo"][condition] = dpo(project)  # weighted: by the reward model just fitted
    _drop_mistaken(projects[True])
    _set_config(projects[True], reliability={"enabled": False})
    _step(projects[True], "fit_reward_model")
    found["rm_accuracy"]["dropped"] = rm_accuracy(projects[True])
    found["dpo"]["dropped"] = dpo(projects[True])
    found["initial_mean_score"] = float(initial.mean())
    return found


def one(job: dict) -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import django

    django.setup()
    part, params = job["part"], {k: v for k, v in job.items() if k not in ("part",)}
    run = {"pendulum": pendulum_accuracy, "loop": pendulum_loop, "text": text_demo}[part]
    print(json.dumps(run(**params)))


# --- the driver ---------------------------------------------------------------------------------
def ensure_database(database_url: str) -> str:
    """A database of the benchmark's own beside DATABASE_URL's, migrated."""
    import psycopg

    admin_url, _, name = database_url.rpartition("/")
    own = f"{name}_annotator_noise"
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [own]).fetchone():
            conn.execute(f'CREATE DATABASE "{own}"')
    url = f"{admin_url}/{own}"
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=REPO, env=env, check=True
    )
    return url


def launch(job: dict, env: dict) -> dict:
    command = [sys.executable, __file__, "--one", json.dumps(job)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {**job, "error": done.stderr[-3000:], "wall_s": wall}
    return {**job, **json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}


def _seeds(text: str) -> list[int]:
    return [int(seed) for seed in text.split(",") if seed]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _recovered(means: dict) -> float | None:
    lost = means["clean"] - means["noisy"]
    return (means["weighted"] - means["noisy"]) / lost if lost > 0 else None


def _dpo_accuracy(run: dict) -> dict:
    return {condition: found["accuracy"] for condition, found in run["dpo"].items()}


def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    summary: dict = {}
    for name, part, read in (
        ("pendulum reward model", "pendulum", lambda r: r["accuracy"]),
        ("text reward model", "text", lambda r: r["rm_accuracy"]),
        ("text DPO (implicit reward)", "text", _dpo_accuracy),
    ):
        cells = [read(r) for r in ok if r["part"] == part]
        if not cells:
            continue
        stats = {c: _mean_std([cell[c] for cell in cells]) for c in CONDITIONS}
        means = {c: m for c, (m, _) in stats.items()}
        summary[name] = {
            "accuracy": stats,
            "seeds": len(cells),
            "recovered": _recovered(means),
            # the same share of what an oracle that drops the two would win back
            "recovered_vs_dropped": _recovered({**means, "clean": means["dropped"]}),
        }
    text = [r for r in ok if r["part"] == "text"]
    if text:
        summary["text DPO win rate"] = {
            c: _mean_std([r["dpo"][c]["win_rate"] for r in text]) for c in CONDITIONS
        }
    loops = [r for r in ok if r["part"] == "loop"]
    if loops:
        summary["pendulum loop true return"] = {
            c: _mean_std([r["true_return"] for r in loops if r["condition"] == c])
            for c in sorted({r["condition"] for r in loops})
        }
    for part in ("pendulum", "text"):
        found = [r["flip_rates"] for r in ok if r["part"] == part and "flip_rates" in r]
        if found:
            names = sorted(found[0])
            summary[f"{part} recovered flip rates"] = {
                name: {
                    "true": EPSILON if name.startswith("mistake") else 0.0,
                    "estimated": _mean_std([f[name] for f in found if name in f]),
                }
                for name in names
            }
    return summary


def print_table(summary: dict, settings: dict) -> None:
    print(f"\nsettings (small budgets, for 2 cores): {json.dumps(settings)}")
    header = "".join(f"{c:>17}" for c in CONDITIONS)
    print(f"\n{'held-out accuracy on the true preference':44}{header}  recovered (≥ 0.5?)")
    for name, row in summary.items():
        if "recovered" not in row:
            continue
        cells = "".join(f"{m:>10.3f} ± {s:.3f}" for m, s in map(row["accuracy"].get, CONDITIONS))
        rec = row["recovered"]
        verdict = "n/a (no loss)" if rec is None else f"{rec:.2f} {'yes' if rec >= 0.5 else 'NO'}"
        print(f"{name + ' (' + str(row['seeds']) + ' seeds)':44}{cells}  {verdict}")
    for name in ("text DPO win rate", "pendulum loop true return"):
        if name in summary:
            cells = "  ".join(f"{c} {m:.3f} ± {s:.3f}" for c, (m, s) in summary[name].items())
            print(f"{name:44}{cells}")
    for part in ("pendulum", "text"):
        if (rates := summary.get(f"{part} recovered flip rates")) is not None:
            cells = "  ".join(
                f"{n} {v['estimated'][0]:.2f} (true {v['true']:.1f})" for n, v in rates.items()
            )
            print(f"{'ε recovered, ' + part:44}{cells}")


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.2), dpi=110, layout="constrained")
    bars, rates, wins, returns = figure.subplots(1, 4)
    colours = {"clean": "#999999", "noisy": "#d65a24", "weighted": "#2457d6", "dropped": "#6aa84f"}
    names = [n for n, row in summary.items() if "recovered" in row]
    for k, condition in enumerate(CONDITIONS):
        means = [summary[n]["accuracy"][condition][0] for n in names]
        stds = [summary[n]["accuracy"][condition][1] for n in names]
        x = np.arange(len(names)) + (k - 1.5) * 0.2
        bars.bar(x, means, 0.2, yerr=stds, capsize=2, color=colours[condition], label=condition)
    bars.set_xticks(np.arange(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=7)
    bars.set_ylim(0.5, 1.0)
    bars.set_ylabel("held-out accuracy on the true preference")
    bars.legend(fontsize=7)
    bars.set_title("accuracy per condition (mean ± std over seeds)", fontsize=9)
    for part, marker in (("pendulum", "o"), ("text demo", "s")):
        found = summary.get(f"{part.split()[0]} recovered flip rates", {})
        rates.plot([], [], marker=marker, linestyle="none", color="black", label=part)
        for n, row in enumerate(found.values()):
            rates.errorbar(
                row["true"] + 0.01 * (n - 2.5),
                row["estimated"][0],
                yerr=row["estimated"][1],
                marker=marker,
                linestyle="none",
                color="#d65a24" if row["true"] else "#2457d6",
            )
    rates.plot([0, 0.5], [0, 0.5], color="grey", linestyle=":", linewidth=1)
    rates.set_xlabel("true flip rate ε")
    rates.set_ylabel("estimated ε (EM; mean ± std over seeds)")
    rates.set_title("recovered ε per annotator", fontsize=9)
    rates.legend(fontsize=7)
    for axes, name, ylabel in (
        (wins, "text DPO win rate", "DPO policy's win rate against the initial one"),
        (returns, "pendulum loop true return", "final policy's true return"),
    ):
        cells = summary.get(name, {})
        means, stds = [m for m, _ in cells.values()], [s for _, s in cells.values()]
        axes.bar(list(cells), means, yerr=stds, capsize=3, color=[colours[c] for c in cells])
        axes.set_ylabel(ylabel)
        axes.set_title(name, fontsize=9)
    wins.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="pendulum,text,loop")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="pendulum accuracy seeds")
    parser.add_argument("--pendulum-labels", type=int, default=300)
    parser.add_argument("--test-pairs", type=int, default=400)
    parser.add_argument("--text-seeds", default="0,1,2")
    parser.add_argument("--text-labels", type=int, default=300)
    parser.add_argument("--text-test-samples", type=int, default=600)
    parser.add_argument("--text-dpo-epochs", type=int, help="config dpo.epochs (default: 2)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--loop-seeds", default="0,1")
    parser.add_argument("--loop-rounds", type=int, default=3)
    parser.add_argument("--loop-labels", type=int, default=100, help="per round")
    parser.add_argument("--loop-steps", type=int, default=20_000, help="PPO steps per round")
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once (one core each)")
    parser.add_argument("--out", default=str(RESULTS / "annotator_noise.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(json.loads(args.one))

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        parser.error("set DATABASE_URL (the benchmark makes a database of its own beside it)")
    parts = args.parts.split(",")
    jobs = []
    text = {
        "labels": args.text_labels,
        "test_samples": args.text_test_samples,
        "dpo_epochs": args.text_dpo_epochs,
    }
    for seed in _seeds(args.text_seeds) if "text" in parts else ():  # the longest jobs first
        jobs.append({"part": "text", "seed": seed, **text, "max_new_tokens": args.max_new_tokens})
    loop = {"labels": args.loop_labels, "rounds": args.loop_rounds, "steps": args.loop_steps}
    for seed in _seeds(args.loop_seeds) if "loop" in parts else ():
        jobs += [{"part": "loop", "seed": seed, "condition": c, **loop} for c in CONDITIONS[:3]]
    for seed in _seeds(args.seeds) if "pendulum" in parts else ():
        pendulum = {"labels": args.pendulum_labels, "test_pairs": args.test_pairs}
        jobs.append({"part": "pendulum", "seed": seed, **pendulum})
    if "text" in parts:  # build the demo LM once, before the text jobs ask for it
        env = {**os.environ, "DEBUG": "1"}
        build = [sys.executable, "manage.py", "build_demo_lm"]
        subprocess.run(build, cwd=REPO, check=True, env=env, stdout=subprocess.DEVNULL)
    env = {
        **os.environ,
        "DEBUG": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "DATABASE_URL": ensure_database(database_url),
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="annotator-noise-"),
    }
    settings = {k: v for k, v in vars(args).items() if k not in ("one", "out", "parallel")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = []
    started = time.perf_counter()

    def record(result: dict) -> None:
        runs.append(result)
        what = f"{result['part']} {result.get('condition', '')} seed {result['seed']}"
        said = result.get("error", "").strip().splitlines()[-1:] or ["ok"]
        print(f"[{len(runs)}/{len(jobs)}] {what}: {said[0]} ({result['wall_s']:.0f} s)", flush=True)
        found = {"settings": settings, "summary": summarise(runs), "runs": runs}
        out.write_text(json.dumps(found, indent=2))

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for future in [pool.submit(launch, job, env) for job in jobs]:
            record(future.result())
    summary = summarise(runs)
    settings["wall_s"] = round(time.perf_counter() - started)
    out.write_text(json.dumps({"settings": settings, "summary": summary, "runs": runs}, indent=2))
    print(f"\n{len(runs)} jobs in {settings['wall_s']} s")
    print_table(summary, settings)
    plot(summary, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
