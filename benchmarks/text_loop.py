"""The text loop on the demo LM: what rounds of 256 judgements do to the policy.

Two arms, each a text project in PostgreSQL on the demo LM (manage.py build_demo_lm; built
here if missing) with the demo's sampling settings, driven by the platform's real loop:
`manage.py run_loop --teacher rational`, one round per call, so the synthetic lexicon
teacher (demo/sentiment_lexicon.tsv; the higher score wins, equal scores tie) judges every
open comparison through labeling's services and the round's steps run in process
(training/runner.py):
  dpo   algorithm dpo: DPO on every judged pair so far, π_ref the round's starting policy;
  ppo   algorithm ppo: the reward model r_θ(x, y) fitted on every judgement so far, then PPO
        on r_θ − β·KL(π‖π_ref).
Each round makes 256 comparisons (k = 2) from 30 of the demo's 40 prompts; the teacher
judges them before the next round trains. The first 256 come from the initial policy.

After each round the stored policy version is evaluated against the reference, the
initial policy (the base model, config.model_dir), on the 10 held-out prompts, --samples
responses each:
  win rate   mean of 1(S(y) > S(y')) + ½·1(S(y) = S(y')), y ~ π and y' ~ π_ref drawn
             independently at the project's temperature and top_p, S the lexicon score;
             ± the standard error over the pairs;
  KL         mean of log π(y|x) − log π_ref(y|x) over y ~ π at temperature 1 without top-p
             (the exact distribution the log-probabilities are of), summed over the
             response's tokens (eos included): the sequence KL(π ‖ π_ref), in nats.
Where the platform's improve step reports its own teacher/win_rate and kl/sequence
(training/kinds/text_eval.py: one sample per held-out prompt, drawn at top-p), they are
recorded beside these (platform_*) as a cross-check.

Target (issue 12): teacher win rate ≥ 0.8 over the reference at sequence KL ≤ 3 after two
DPO rounds.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/text_loop.py            # 3 rounds × 2 arms, 1 seed
    .venv/bin/python benchmarks/text_loop.py --quick        # smoke run: 2 rounds of 32
    .venv/bin/python benchmarks/text_loop.py --arms dpo --seeds 0,1,2

Each (arm, seed) is a fresh process (at most --parallel at once, one torch thread each) on
a database of its own beside DATABASE_URL's (<name>_text_loop). Prints a table, writes
benchmarks/results/text_loop.json and text_loop.png (win rate against KL).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ARMS = ("dpo", "ppo")
TRAIN_PROMPTS = 30  # of the demo's 40 prompts; the other 10 are held out for evaluation
TEACHER = "rational"  # β = ∞: the higher lexicon score wins, equal scores tie
TARGET_WIN_RATE, TARGET_KL, TARGET_ROUND = 0.8, 3.0, 2
PROGRESS = "@progress"  # a job's stdout line that moves the driver's bar


# --- inside a job's process ---------------------------------------------------------------------
def _demo_lm_dir() -> Path:
    """The demo LM's directory, built (under the build's lock) when missing."""
    import fcntl

    from django.conf import settings

    from demo import lm_build
    from training.ml.lm.demo_lm import DEMO_CORPUS, build_demo_lm

    path = lm_build.model_dir()
    lock_path = Path(settings.DATA_DIR) / "demo-lm.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # wait for a build elsewhere rather than race it
        if not lm_build.is_built(path):
            build_demo_lm(corpus_path=DEMO_CORPUS, out_dir=path, seed=0)
    return path


class Evaluator:
    """A policy against the reference π_ref (the base model) on the held-out prompts."""

    def __init__(self, *, model_dir: Path, prompts: list[str], sampling: dict, samples: int,
                 seed: int):  # fmt: skip
        from training.ml.lm import lm
        from training.ml.lm.text_teacher import load_lexicon

        self.reference, self.tokenizer = lm.load_causal_lm(model_dir)
        self.prompts, self.sampling, self.samples, self.seed = prompts, sampling, samples, seed
        self.lexicon = load_lexicon()
        self.prompt_ids = lm.encode_prompts(self.tokenizer, prompts)
        # one draw of the reference's answers, shared by every round of this job
        self.reference_scores = self._scores(self._draw(self.reference, seed, **sampling))

    def _draw(self, model, seed: int, **sampling) -> list[list[list[int]]]:
        from training.ml.lm import lm

        return lm.generate_response_ids(
            model=model, tokenizer=self.tokenizer, prompts=self.prompts, k=self.samples,
            seed=seed, **sampling,
        )  # fmt: skip  # (P, n, ·)

    def _scores(self, ids: list[list[list[int]]]) -> np.ndarray:
        from training.ml.lm import lm
        from training.ml.lm.text_teacher import lexicon_score

        return np.array(
            [[lexicon_score(t, self.lexicon) for t in lm.decode_responses(self.tokenizer, row)]
             for row in ids]
        )  # fmt: skip  # (P, n)

    def _log_ratios(self, policy, ids: list[list[list[int]]]) -> np.ndarray:
        """log π(y|x) − log π_ref(y|x) of each sample, at temperature 1: (P·n,)."""
        import torch

        from training.ml.lm import lm

        prompts = [p for p, row in zip(self.prompt_ids, ids, strict=True) for _ in row]
        responses = [r for row in ids for r in row]
        found = []
        for model in (policy, self.reference):
            chunks = []
            for start in range(0, len(prompts), 64):
                batch = lm.collate_prompt_response(
                    prompt_ids=prompts[start : start + 64],
                    response_ids=responses[start : start + 64],
                    pad_token_id=self.tokenizer.pad_token_id,
                    max_length=lm.max_positions(model),
                )
                with torch.no_grad():
                    chunks.append(lm.response_logprobs(model=model, batch=batch))
            found.append(torch.cat(chunks).double().numpy())
        return found[0] - found[1]

    def evaluate(self, policy, version: int) -> dict:
        scores = self._scores(self._draw(policy, self.seed + 1 + version, **self.sampling))
        outcomes = (scores > self.reference_scores) + 0.5 * (scores == self.reference_scores)
        exact = {**self.sampling, "temperature": 1.0, "top_p": 1.0}
        kl_ids = self._draw(policy, self.seed + 101 + version, **exact)
        log_ratios = self._log_ratios(policy, kl_ids)
        return {
            "win_rate": float(outcomes.mean()),
            "win_rate_se": float(outcomes.std(ddof=1) / np.sqrt(outcomes.size)),
            "kl": float(log_ratios.mean()),
            "kl_se": float(log_ratios.std(ddof=1) / np.sqrt(log_ratios.size)),
            "mean_score": float(scores.mean()),
            "reference_mean_score": float(self.reference_scores.mean()),
            "eval_pairs": int(outcomes.size),
        }


def _wall(run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def run_arm(
    *, arm: str, seed: int, rounds: int, comparisons: int, samples: int, beta: float | None
) -> dict:
    """One project through `rounds` rounds of run_loop; each policy version evaluated."""
    from dataclasses import fields

    from django.core.management import call_command
    from django.db.models import Count

    from demo.lm_build import demo_lm_config
    from labeling import services
    from labeling.models import Judgement
    from training import artifacts
    from training.kinds.config import TextConfig
    from training.ml.lm import lm
    from training.ml.lm.demo_lm import read_prompts
    from training.models import Policy, Run

    model_dir = _demo_lm_dir()
    prompts = read_prompts()
    train, held_out = prompts[:TRAIN_PROMPTS], prompts[TRAIN_PROMPTS:]
    config = {
        **demo_lm_config(model_dir),  # the demo's sampling settings and β
        "prompts": train,
        "algorithm": arm,
        "comparisons_per_round": comparisons,
        "seed": seed,
        **({"beta": beta} if beta is not None else {}),
    }
    if "eval_prompts" in {f.name for f in fields(TextConfig)}:
        config["eval_prompts"] = held_out  # the platform's own per-round evaluation
    slug = f"tl-{arm}-{seed}-{uuid.uuid4().hex[:6]}"
    project = services.create_project(
        slug=slug, name=slug, kind="text", round_size=10**9, config=config
    )
    sampling = {k: config[k] for k in ("temperature", "top_p", "max_new_tokens")}
    evaluator = Evaluator(model_dir=model_dir, prompts=held_out, sampling=sampling,
                          samples=samples, seed=50_000 + seed)  # fmt: skip
    base, _ = lm.load_causal_lm(model_dir)
    rows = [{"round": 0, "policy_version": 0, **evaluator.evaluate(base, 0)}]
    print(PROGRESS, flush=True)
    for number in range(1, rounds + 1):
        start = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            call_command("run_loop", project=slug, rounds=1, teacher=TEACHER, seed=seed,
                         stdout=quiet, stderr=quiet)  # fmt: skip
        wall = time.perf_counter() - start
        round_run = Run.objects.get(project=project, kind="round", number=number)
        assert round_run.status == "succeeded", round_run.error
        steps = {step.kind: step for step in round_run.steps.all()}
        policy_row = artifacts.latest(Policy, project)
        with artifacts.local_directory(policy_row.checkpoint) as path:
            policy, _ = lm.load_policy(path)
        found = evaluator.evaluate(policy, policy_row.version)
        improve = _numbers(steps["improve_policy"].metrics)
        choices = dict(
            Judgement.objects.filter(project=project)
            .values_list("choice")
            .annotate(n=Count("id"))
            .values_list("choice", "n")
        )
        rows.append(
            {
                "round": number,
                "policy_version": policy_row.version,
                **found,
                "platform_win_rate": improve.get("teacher/win_rate"),
                "platform_win_rate_se": improve.get("teacher/win_rate_se"),
                "platform_kl": improve.get("kl/sequence"),
                "judgements": choices,
                "fit_reward_model": _numbers(steps["fit_reward_model"].metrics),
                "improve_policy": improve,
                "step_wall_s": {kind: _wall(step) for kind, step in steps.items()},
                "round_wall_s": wall,  # judging + the three steps
            }
        )
        print(PROGRESS, flush=True)
    return {"rows": rows}


def one(job: dict) -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import django

    django.setup()
    print(json.dumps(run_arm(**job)), flush=True)


# --- the driver ---------------------------------------------------------------------------------
def ensure_database(database_url: str) -> str:
    """A database of the benchmark's own beside DATABASE_URL's, migrated."""
    import psycopg

    admin_url, _, name = database_url.rpartition("/")
    own = f"{name}_text_loop"
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [own]).fetchone():
            conn.execute(f'CREATE DATABASE "{own}"')
    url = f"{admin_url}/{own}"
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=REPO, env=env, check=True
    )
    return url


def launch(job: dict, env: dict, bar, lock: threading.Lock) -> dict:
    """Run one job in a fresh process, moving the bar on each of its progress lines."""
    command = [sys.executable, __file__, "--one", json.dumps(job)]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                   stderr=errors, text=True)  # fmt: skip
        last = ""
        for line in process.stdout:
            if line.startswith(PROGRESS):
                with lock:
                    bar.update(1)
            elif line.strip():
                last = line
        process.wait()
        errors.seek(0)
        failure = errors.read()[-3000:]
    wall = time.perf_counter() - start
    if process.returncode != 0:
        return {**job, "error": failure, "wall_s": wall}
    return {**job, **json.loads(last), "wall_s": wall}


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    """Mean over seeds, and its standard error (None for one seed)."""
    if len(values) < 2:
        return float(values[0]), None
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))


# per round of a job: (summary name, how to read it); None where a round does not report it
def _metric(step: str, name: str):
    return lambda cell: cell.get(step, {}).get(name)


def _step_wall(kind: str):
    return lambda cell: (cell.get("step_wall_s") or {}).get(kind)


def _pairs(cell: dict) -> int | None:
    """Judgements that are DPO pairs (a tie is none)."""
    judged = cell.get("judgements", {})
    return sum(n for choice, n in judged.items() if choice in ("left", "right")) or None


AVERAGED = {
    "mean_score": lambda cell: cell["mean_score"],
    "platform_win_rate": lambda cell: cell.get("platform_win_rate"),
    "platform_kl": lambda cell: cell.get("platform_kl"),
    "dpo_accuracy": _metric("improve_policy", "rewards/accuracies"),
    "dpo_margin": _metric("improve_policy", "rewards/margins"),
    "rm_accuracy": _metric("fit_reward_model", "reward/heldout_accuracy"),
    "ppo_kl": _metric("improve_policy", "kl"),
    "pairs": _pairs,
    "fit_s": _step_wall("fit_reward_model"),
    "improve_s": _step_wall("improve_policy"),
    "generate_s": _step_wall("generate_comparisons"),
    "round_s": lambda cell: cell.get("round_wall_s"),
}


def summarise(runs: list[dict]) -> list[dict]:
    """Per arm and round: the figures, averaged over seeds (one seed: that seed's, with the
    evaluation's own standard errors)."""
    ok = [r for r in runs if "error" not in r]
    rows = []
    for arm in ARMS:
        jobs = [r for r in ok if r["arm"] == arm]
        if not jobs:
            continue
        for number in range(min(len(j["rows"]) for j in jobs)):
            cells = [j["rows"][number] for j in jobs]
            win, win_se = _mean_se([c["win_rate"] for c in cells])
            kl, kl_se = _mean_se([c["kl"] for c in cells])
            if len(cells) == 1:
                win_se, kl_se = cells[0]["win_rate_se"], cells[0]["kl_se"]
            row = {"arm": arm, "round": number, "seeds": len(cells), "win_rate": win,
                   "win_rate_se": win_se, "kl": kl, "kl_se": kl_se}  # fmt: skip
            for name, read in AVERAGED.items():
                values = [v for c in cells if (v := read(c)) is not None]
                row[name] = float(np.mean(values)) if values else None
            rows.append(row)
    return rows


def target_verdict(rows: list[dict]) -> dict:
    """The issue's target on the DPO arm's round TARGET_ROUND."""
    found = [r for r in rows if r["arm"] == "dpo" and r["round"] == TARGET_ROUND]
    if not found:
        return {"met": None, "why": f"no DPO round {TARGET_ROUND} measured"}
    row = found[0]
    met = row["win_rate"] >= TARGET_WIN_RATE and row["kl"] <= TARGET_KL
    return {"met": bool(met), "win_rate": row["win_rate"], "kl": row["kl"]}


def _cell(value, digits: int = 3, width: int = 7) -> str:
    return f"{'–':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def print_table(rows: list[dict], verdict: dict) -> None:
    print(
        f"\n{'arm':4} {'rnd':>3} {'win rate ± s.e.':>16} {'KL ± s.e.':>15} {'score':>6} "
        f"{'plat.win':>8} {'plat.KL':>7} {'pairs':>5} {'DPO acc':>7} {'margin':>7} "
        f"{'RM acc':>7} {'PPO kl':>7} {'fit s':>6} {'impr s':>6} {'gen s':>6} {'round s':>7}"
    )
    for r in rows:
        win_se = "" if r["win_rate_se"] is None else f" ± {r['win_rate_se']:.3f}"
        kl_se = "" if r["kl_se"] is None else f" ± {r['kl_se']:.2f}"
        print(
            f"{r['arm']:4} {r['round']:>3} {r['win_rate']:>8.3f}{win_se:<8} "
            f"{r['kl']:>7.2f}{kl_se:<8} {_cell(r['mean_score'], 2, 6)} "
            f"{_cell(r['platform_win_rate'], 3, 8)} {_cell(r['platform_kl'], 2)} "
            f"{_cell(r['pairs'], 0, 5)} {_cell(r['dpo_accuracy'])} {_cell(r['dpo_margin'])} "
            f"{_cell(r['rm_accuracy'])} {_cell(r['ppo_kl'])} {_cell(r['fit_s'], 1, 6)} "
            f"{_cell(r['improve_s'], 1, 6)} {_cell(r['generate_s'], 1, 6)} "
            f"{_cell(r['round_s'], 1)}"
        )
    target = f"win rate ≥ {TARGET_WIN_RATE} at KL ≤ {TARGET_KL} after {TARGET_ROUND} DPO rounds"
    if verdict["met"] is None:
        print(f"\ntarget ({target}): {verdict['why']}")
    else:
        print(
            f"\ntarget ({target}): {'MET' if verdict['met'] else 'NOT MET'} "
            f"(win rate {verdict['win_rate']:.3f}, KL {verdict['kl']:.2f})"
        )


def plot(rows: list[dict], path: Path, settings: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.8), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    colours = {"dpo": "#2457d6", "ppo": "#d65a24"}
    names = {"dpo": "DPO", "ppo": "reward model + PPO"}
    top_kl = max([TARGET_KL * 1.6] + [r["kl"] + (r["kl_se"] or 0) for r in rows])
    axes.fill_between(
        [-0.5, TARGET_KL], TARGET_WIN_RATE, 1.02, color="#6aa84f", alpha=0.18,
        label=f"target: win ≥ {TARGET_WIN_RATE}, KL ≤ {TARGET_KL:g}",
    )  # fmt: skip
    for arm in ARMS:
        cells = [r for r in rows if r["arm"] == arm]
        if not cells:
            continue
        axes.errorbar(
            [r["kl"] for r in cells], [r["win_rate"] for r in cells],
            xerr=[r["kl_se"] or 0 for r in cells], yerr=[r["win_rate_se"] or 0 for r in cells],
            color=colours[arm], marker="o", capsize=3, label=names[arm],
        )  # fmt: skip
        for r in cells:
            axes.annotate(
                f"r{r['round']}", (r["kl"], r["win_rate"]), textcoords="offset points",
                xytext=(6, -10), fontsize=8, color=colours[arm],
            )  # fmt: skip
    axes.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axes.set_xlim(-0.5, 1.08 * top_kl)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("sequence KL(π ‖ π_ref) on held-out prompts (nats)")
    axes.set_ylabel("lexicon teacher's win rate over π_ref")
    axes.set_title(
        f"Demo LM, {settings['comparisons']} judgements per round, "
        f"{len(settings['seeds'])} seed(s); π_ref = the initial policy",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--comparisons", type=int, default=256, help="judgements per round")
    parser.add_argument("--samples", type=int, default=32, help="per held-out prompt")
    parser.add_argument("--beta", type=float, help="config.beta (default: the demo's, 0.1)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 32, 8 samples")
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once (one core each)")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/text_loop.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(json.loads(args.one))
    if args.quick:
        args.rounds, args.comparisons, args.samples = 2, 32, 8
    default_out = "text_loop.quick.json" if args.quick else "text_loop.json"
    out = Path(args.out or RESULTS / default_out)

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        parser.error("set DATABASE_URL (the benchmark makes a database of its own beside it)")
    from tqdm import tqdm

    arms = [a for a in args.arms.split(",") if a]
    if unknown := set(arms) - set(ARMS):
        parser.error(f"unknown arms {sorted(unknown)}: choose from {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    jobs = [
        {"arm": arm, "seed": seed, "rounds": args.rounds, "comparisons": args.comparisons,
         "samples": args.samples, "beta": args.beta}
        for seed in seeds
        for arm in arms
    ]  # fmt: skip
    env = {
        **os.environ,
        "DEBUG": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DATABASE_URL": ensure_database(database_url),
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="text-loop-"),
    }
    settings = {"arms": arms, "seeds": seeds, "rounds": args.rounds,
                "comparisons": args.comparisons, "k": 2, "teacher": TEACHER,
                "samples_per_prompt": args.samples, "beta": args.beta or "the demo's",
                "train_prompts": TRAIN_PROMPTS,
                "held_out_prompts": 40 - TRAIN_PROMPTS, "quick": args.quick}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = []
    started = time.perf_counter()
    lock = threading.Lock()
    # the demo LM once, before the jobs ask for it (a job builds it too when missing)
    build = [sys.executable, "manage.py", "build_demo_lm"]
    subprocess.run(build, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)

    with tqdm(total=len(jobs) * (args.rounds + 1), desc="text loop", unit="eval") as bar:

        def record(result: dict) -> None:
            runs.append(result)
            said = result.get("error", "").strip().splitlines()[-1:] or ["ok"]
            bar.write(f"{result['arm']} seed {result['seed']}: {said[0]} "
                      f"({result['wall_s']:.0f} s)")  # fmt: skip
            rows = summarise(runs)
            found = {"settings": settings, "summary": rows, "target": target_verdict(rows),
                     "runs": runs}  # fmt: skip
            out.write_text(json.dumps(found, indent=2))

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for future in [pool.submit(launch, job, env, bar, lock) for job in jobs]:
                record(future.result())
    rows = summarise(runs)
    verdict = target_verdict(rows)
    settings["wall_s"] = round(time.perf_counter() - started)
    found = {"settings": settings, "summary": rows, "target": verdict, "runs": runs}
    out.write_text(json.dumps(found, indent=2))
    print(f"\n{len(runs)} jobs in {settings['wall_s']} s; settings: {json.dumps(settings)}")
    if rows:
        print_table(rows, verdict)
        plot(rows, out.with_suffix(".png"), settings)
    for r in runs:
        if "error" in r:
            print(f"\n{r['arm']} seed {r['seed']} failed:\n{r['error']}")
    print(f"wrote {out}" + (f" and {out.with_suffix('.png')}" if rows else ""))


if __name__ == "__main__":
    main()
