"""The load benchmark before and after a change, side by side in one run.

Checks out ``--before`` (default: the commit before the hardening work began) in a
temporary git worktree that shares this checkout's virtualenv, then runs
benchmarks/labeling_load.py in each tree in turn, ``--repeats`` times, alternating so that
the machine's noise falls on both alike. Each repeat also runs benchmarks/request_cost.py
in both trees: the platform's own milliseconds per next + judgement cycle in process,
without gunicorn or other clients, which separates a change in the code from the noise of
a loaded machine. Prints each scenario's median judgements/s, the median cost per cycle
and the ratios after/before; writes benchmarks/results/labeling_load_before_after.json.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/load_before_after.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE = "d3187b4^"  # "Bodies past REQUEST_MAX_BYTES are a 413": the first hardening commit
RESULTS = REPO / "benchmarks" / "results" / "labeling_load_before_after.json"


def run_load(tree: Path, scenarios: str) -> dict[str, float]:
    subprocess.run(
        [str(REPO / ".venv/bin/python"), "benchmarks/labeling_load.py", "--scenarios", scenarios],
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    found = json.loads((tree / "benchmarks/results/labeling_load.json").read_text())
    return {s["scenario"]: s["judgements_per_second"] for s in found["scenarios"]}


def run_request_cost(tree: Path) -> list[float]:
    """Milliseconds per cycle, one figure per annotator, measured with ``tree``'s code."""
    done = subprocess.run(
        [str(REPO / ".venv/bin/python"), str(REPO / "benchmarks/request_cost.py")],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("[")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the git revision to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scenarios", default="separate,combined")
    args = parser.parse_args()
    revision = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    costs: dict[str, list[float]] = {"before": [], "after": []}
    own_results = REPO / "benchmarks/results/labeling_load.json"
    kept = own_results.read_bytes() if own_results.exists() else None  # each run rewrites it
    with tempfile.TemporaryDirectory(prefix="rlhf-before-") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), revision], cwd=REPO,
                       check=True, capture_output=True)  # fmt: skip
        (old / ".venv").symlink_to(REPO / ".venv")
        try:
            for repeat in range(args.repeats):
                for label, tree in (("before", old), ("after", REPO)):
                    runs[label].append(run_load(tree, args.scenarios))
                    print(f"run {repeat + 1} {label}: {runs[label][-1]}", flush=True)
                for label, tree in (("before", old), ("after", REPO)):
                    costs[label] += run_request_cost(tree)
                    print(f"cost {repeat + 1} {label}: {costs[label][-8:]}", flush=True)
        finally:
            if kept is not None:
                own_results.write_bytes(kept)
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO,
                           check=False, capture_output=True)  # fmt: skip
    rows = []
    print(f"\n{'scenario':<10} {'before ' + revision:>16} {'after ' + head:>16} {'ratio':>7}")
    for scenario in args.scenarios.split(","):
        before = statistics.median(run[scenario] for run in runs["before"])
        after = statistics.median(run[scenario] for run in runs["after"])
        rows.append(
            {"scenario": scenario, "before": before, "after": after, "ratio": after / before}
        )
        print(f"{scenario:<10} {before:>14.1f}/s {after:>14.1f}/s {after / before:>7.2f}")
    cost = {label: statistics.median(values) for label, values in costs.items()}
    cost["ratio"] = cost["after"] / cost["before"]
    print(
        f"{'cost':<10} {cost['before']:>11.2f} ms/c {cost['after']:>11.2f} ms/c "
        f"{cost['ratio']:>7.2f}  (in process, median over annotators and repeats)"
    )
    RESULTS.write_text(
        json.dumps(
            {"before": revision, "after": head, "repeats": args.repeats, "runs": runs,
             "median_judgements_per_second": rows, "request_cost_ms": costs,
             "median_request_cost_ms": cost},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    print(f"\nwrote {RESULTS}")
    sys.exit(0)


if __name__ == "__main__":
    main()
