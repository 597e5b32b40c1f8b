"""Feedback efficiency on Pendulum-v1: the true return a loop reaches for a label budget.

Side by side in one run, each run a fresh process (at most --parallel at once, one torch
thread each):
  platform   this platform's real loop: a trajectory project in PostgreSQL, driven by
             `manage.py run_loop` with a synthetic teacher judging through the same
             services people use; PPO with its continuous-control defaults, the
             front_loaded label schedule (a quarter of the labels from the initial policy),
             disagreement selection over a 3-member reward ensemble;
  imitation  imitation 1.0.1's preference comparisons with SB3's PPO
             (benchmarks/imitation_pendulum.py, in .venv-imitation), with the same PPO
             hyperparameters, fragment length, initial share and schedule;
  ceiling    the platform's PPO on the TRUE reward for the same number of steps, normalised
             as the learned reward is (NormalisedTrueReward).
Both loops get --steps environment steps and the same label budgets; the teachers are
the rational one (a deterministic oracle on the true return) and B-Pref's mistake teacher
(the oracle's choice flipped with probability ε = 0.1). The final policy is scored on 20
deterministic episodes. Prints mean ± std and the interquartile mean per cell, writes
benchmarks/results/feedback_efficiency.json (after every run, so a cut run keeps what it
measured) and draws true return against labels (feedback_efficiency.png).

    make bench-imitation   # once: imitation into .venv-imitation
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/feedback_efficiency.py --budgets 100,200 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
IMITATION_PYTHON = REPO / ".venv-imitation" / "bin" / "python"
ENV_ID = "Pendulum-v1"
EVAL_EPISODES = 20


# --- one run, in its own process ---------------------------------------------------------------
def run_platform(
    *, labels: int, seed: int, teacher: str, steps: int, rounds: int, gamma: float, extra: dict
) -> dict:
    """One project through run_loop: the first comparisons are sampled from the initial
    policy, then ``rounds`` − 1 rounds train on what was judged (run_loop judges before
    each round); the last one asks for no more labels."""
    from django.core.management import call_command

    from labeling import services
    from training.models import Run

    config = {
        "env_id": ENV_ID,
        "algorithm": "ppo",
        "env_steps_per_round": steps // (rounds - 1),
        "label_schedule": "front_loaded",
        "label_budget": labels,
        "label_rounds": rounds - 2,
        "render_clips": False,
        "eval_episodes": EVAL_EPISODES,
        "seed": seed,
        "gamma": gamma,
        **extra,
    }
    slug = f"fe-{teacher}-{labels}-{seed}-{uuid.uuid4().hex[:6]}"
    services.create_project(
        slug=slug, name=slug, kind="trajectory", round_size=10**9, config=config
    )
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        call_command(
            "run_loop", project=slug, rounds=rounds - 1, teacher=teacher, seed=seed, stdout=quiet
        )
    wall = time.perf_counter() - start
    last = Run.objects.get(project__slug=slug, kind="improve_policy", number=rounds - 1)
    judged = Run.objects.filter(project__slug=slug, kind="generate_comparisons")
    return {
        "true_return": last.metrics["charts/true_return"],
        "true_return_se": last.metrics["charts/true_return_se"],
        "labels_made": sum(int(r.metrics.get("comparisons/created", 0)) for r in judged),
        "wall_s": wall,
    }


class NormalisedTrueReward:
    """Pendulum-v1's own reward from (o_t, a_t), −(θ² + 0.1 θ̇² + 0.001 u²) with θ from
    o_t = (cos θ, sin θ, θ̇), normalised as the platform normalises its learned reward
    (a running mean and standard deviation, to standard deviation ``scale``): so the
    ceiling differs from the loop only in which reward it is given."""

    def __init__(self, scale: float) -> None:
        from training.ml.control.reward_models import RunningNorm

        self.scale = scale
        self.norm = RunningNorm((), max_count=100_000)

    def __call__(self, obs, actions):
        import torch

        theta = torch.atan2(obs[:, 1], obs[:, 0])
        torque = actions.reshape(len(obs), -1)[:, 0]
        rewards = -(theta.square() + 0.1 * obs[:, 2].square() + 0.001 * torque.square())
        self.norm.update(rewards)
        return self.norm(rewards) * self.scale


def run_ceiling(*, seed: int, steps: int, gamma: float) -> dict:
    from training.kinds.trajectory import OPTIMIZER_DEFAULTS, REWARD_SCALE_DEFAULTS
    from training.ml.control.policies import policy_for_env
    from training.ml.control.ppo import PPOConfig, train_ppo
    from training.ml.control.rollouts import episode_returns

    start = time.perf_counter()
    policy = policy_for_env(ENV_ID, seed=seed)
    config = PPOConfig(**OPTIMIZER_DEFAULTS["continuous"]["ppo"], gamma=gamma)
    reward = NormalisedTrueReward(REWARD_SCALE_DEFAULTS["continuous"])
    train_ppo(
        env_id=ENV_ID, policy=policy, reward_fn=reward, total_steps=steps, config=config, seed=seed
    )
    returns = episode_returns(env_id=ENV_ID, policy=policy, episodes=EVAL_EPISODES, seed=10_000)
    return {"true_return": float(returns.mean()), "wall_s": time.perf_counter() - start}


def one(args) -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import django

    django.setup()
    if args.one == "platform":
        found = run_platform(
            labels=args.labels,
            seed=args.seed,
            teacher=args.teacher,
            steps=args.steps,
            rounds=args.rounds,
            gamma=args.gamma,
            extra=json.loads(args.config),
        )
    else:
        found = run_ceiling(seed=args.seed, steps=args.steps, gamma=args.gamma)
    print(json.dumps(found))


# --- the driver --------------------------------------------------------------------------------
def ensure_database(database_url: str) -> str:
    """A database of the benchmark's own beside DATABASE_URL's, migrated."""
    import psycopg

    admin_url, _, _ = database_url.rpartition("/")
    url = f"{admin_url}/rlhf_feedback"
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'rlhf_feedback'").fetchone():
            conn.execute('CREATE DATABASE "rlhf_feedback"')
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=REPO, env=env, check=True
    )
    return url


def launch(job: dict, args, env: dict) -> dict:
    common = ["--seed", str(job["seed"]), "--steps", str(args.steps), "--gamma", str(args.gamma)]
    if job["system"] == "imitation":
        command = [str(IMITATION_PYTHON), str(REPO / "benchmarks" / "imitation_pendulum.py"),
                   "--labels", str(job["labels"]), "--teacher", job["teacher"],
                   "--iterations", str(args.rounds - 1), *common]  # fmt: skip
    else:
        command = [sys.executable, __file__, "--one", job["system"], *common,
                   "--labels", str(job.get("labels", 0)), "--teacher", job.get("teacher", "-"),
                   "--rounds", str(args.rounds), "--config", args.config]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {**job, "error": done.stderr[-2000:]}
    return {**job, **json.loads(done.stdout.strip().splitlines()[-1])}


def iqm(values: list[float]) -> float:
    """Interquartile mean: the mean of the middle half (Agarwal et al. 2021)."""
    ordered = np.sort(values)
    cut = len(ordered) // 4
    return float(ordered[cut : len(ordered) - cut].mean())


def summarise(results: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for r in results:
        if "error" not in r:
            cells.setdefault((r["system"], r.get("teacher", "-"), r.get("labels", 0)), []).append(r)
    rows = []
    for (system, teacher, labels), runs in sorted(cells.items()):
        returns = [r["true_return"] for r in runs]
        rows.append(
            {
                "system": system,
                "teacher": teacher,
                "labels": labels,
                "runs": len(runs),
                "mean": float(np.mean(returns)),
                "std": float(np.std(returns)),
                "iqm": iqm(returns),
                "seeds": {r["seed"]: round(r["true_return"], 1) for r in runs},
                "wall_s": float(np.mean([r["wall_s"] for r in runs])),
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'system':10} {'teacher':9} {'labels':>6} {'n':>2} {'mean ± std':>16} "
          f"{'IQM':>8} {'wall/run (s)':>12}  per seed")  # fmt: skip
    for row in rows:
        print(
            f"{row['system']:10} {row['teacher']:9} {row['labels']:>6} {row['runs']:>2} "
            f"{row['mean']:>8.1f} ± {row['std']:<6.1f} {row['iqm']:>8.1f} "
            f"{row['wall_s']:>12.1f}  {row['seeds']}"
        )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    for (system, teacher), style in {
        ("platform", "rational"): ("#2457d6", "-"),
        ("platform", "mistake"): ("#2457d6", "--"),
        ("imitation", "rational"): ("#d65a24", "-"),
        ("imitation", "mistake"): ("#d65a24", "--"),
    }.items():
        cell = [r for r in rows if r["system"] == system and r["teacher"] == teacher]
        if cell:
            axes.errorbar(
                [r["labels"] for r in cell], [r["mean"] for r in cell],
                yerr=[r["std"] for r in cell], color=style[0], linestyle=style[1],
                marker="o", capsize=3, label=f"{system}, {teacher} teacher",
            )  # fmt: skip
    for r in rows:
        if r["system"] == "ceiling":
            axes.axhline(r["mean"], color="grey", linestyle=":", label="PPO on the true reward")
    axes.set_xscale("log")
    axes.set_xlabel("labels (comparisons)")
    axes.set_ylabel(f"true return ({EVAL_EPISODES} deterministic episodes)")
    axes.set_title(f"{ENV_ID}: true return against labels (mean ± std over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="50,100,200,500")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--teachers", default="rational,mistake")
    parser.add_argument(
        "--mistake-budgets", help="budgets for the mistake teacher (default: --budgets)"
    )
    parser.add_argument("--systems", default="platform,imitation,ceiling")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument(
        "--gamma",
        type=float,
        default=0.99,
        help="discount of every PPO here, the platform's project config and imitation's",
    )
    parser.add_argument("--rounds", type=int, default=11, help="run_loop rounds (one samples)")
    parser.add_argument(
        "--config", default="{}", help="JSON merged into the platform's project config"
    )
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one core each)")
    parser.add_argument("--out", default=str(RESULTS / "feedback_efficiency.json"))
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in --out and run only the cells missing there",
    )
    parser.add_argument("--one", choices=["platform", "ceiling"], help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--teacher", default="rational", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args)

    systems = args.systems.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if "imitation" in systems and not IMITATION_PYTHON.exists():
        parser.error("imitation is not installed: run `make bench-imitation` first")
    database_url = os.environ.get("DATABASE_URL")
    if "platform" in systems and not database_url:
        parser.error("set DATABASE_URL (the benchmark makes a database of its own beside it)")
    env = {**os.environ, "DEBUG": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if "platform" in systems:
        env["DATABASE_URL"] = ensure_database(database_url)
    budgets = {"rational": args.budgets, "mistake": args.mistake_budgets or args.budgets}
    jobs = [
        {"system": system, "teacher": teacher, "labels": int(labels), "seed": seed}
        for seed in seeds
        for teacher in args.teachers.split(",")
        for labels in budgets[teacher].split(",")
        for system in systems
        if system != "ceiling"
    ] + [{"system": "ceiling", "seed": seed} for seed in seeds if "ceiling" in systems]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    if args.resume and out.exists():
        results = [r for r in json.loads(out.read_text())["runs"] if "error" not in r]
        done = {(r["system"], r.get("teacher"), r.get("labels"), r["seed"]) for r in results}
        jobs = [
            job
            for job in jobs
            if (job["system"], job.get("teacher"), job.get("labels"), job["seed"]) not in done
        ]
        print(f"resuming: {len(results)} runs kept, {len(jobs)} to run", flush=True)
    started = time.perf_counter()

    def record(result: dict) -> None:
        results.append(result)
        shown = result.get("error", "").strip().splitlines()[-1:] or [result["true_return"]]
        what = f"{result['system']} {result.get('teacher', '')} {result.get('labels', '')}"
        print(f"[{len(results)}] {what} seed {result['seed']}: {shown[0]}", flush=True)
        rows = summarise(results)
        settings = {"env": ENV_ID, "steps": args.steps, "rounds": args.rounds, "gamma": args.gamma,
                    "config": json.loads(args.config)}  # fmt: skip
        out.write_text(
            json.dumps({"settings": settings, "summary": rows, "runs": results}, indent=2)
        )

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for future in [pool.submit(launch, job, args, env) for job in jobs]:
            record(future.result())
    rows = summarise(results)
    print(f"\n{len(results)} runs in {time.perf_counter() - started:.0f} s")
    print_table(rows)
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
