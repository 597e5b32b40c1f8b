"""Labels needed until the learned reward's optimal policy has zero regret, on FrozenLake.

The tabular loop of training/tabular.py, run on the pure library (no Django, no database)
with a synthetic rational teacher: each round collects segments of the current policy
(ε = 0.3 random actions; exploring starts for every segment before a policy exists, for
half of them afterwards), chooses a batch of pairs by the selection strategy, has the
teacher judge them (the higher true return wins; equal returns are a tie), refits r̂ on all
labels so far by Bradley-Terry, and runs value iteration on r̂ (γ = 0.9) for the next
policy. It stops when π̂, optimal for r̂, has zero regret on the true reward at the start
state (v*(s_0) − v^π̂(s_0) ≤ 1e-9), or when the label budget is spent.

Strategies: random pairs; disagreement (the most uncertain of 4 × batch candidate pairs
under the Laplace posterior of the BT fit); UCB over quantile bins of that uncertainty, the
arm reward being a judged pair's surprise under the model that chose it.

Prints a table and writes benchmarks/results/tabular_regret.json.

    .venv/bin/python benchmarks/tabular_regret.py            # about 2-3 minutes
    .venv/bin/python benchmarks/tabular_regret.py --seeds 2 --lakes 4x4-deterministic
"""

from __future__ import annotations

import os

# One thread each: the fits are tiny, and BLAS / torch threads only contend for the CPUs.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.ml.control.selection import random_pairs  # noqa: E402
from training.ml.tabular.bandits import UCBPairSelector  # noqa: E402
from training.ml.tabular.dynamic_programming import deterministic_policy  # noqa: E402
from training.ml.tabular.mdp import TabularMDP, make_tabular_mdp  # noqa: E402
from training.ml.tabular.reward import (  # noqa: E402
    TabularRewardConfig,
    fit_tabular_reward_model,
    optimal_policy_regret,
    synthetic_preferences,
)
from training.ml.tabular.segments import (  # noqa: E402
    behaviour_policy,
    collect_tabular_segments,
)
from training.ml.tabular.selection import (  # noqa: E402
    preference_surprise,
    preference_uncertainty,
)

STRATEGIES = ("random", "disagreement", "ucb")
GAMMA = 0.9
# As training/tabular.py does:
EXPLORATION_EPSILON = 0.3
EXPLORING_STARTS_WITHOUT_POLICY, EXPLORING_STARTS_WITH_POLICY = 1.0, 0.5
CANDIDATE_OVERSAMPLE = 4
REWARD_FIT = TabularRewardConfig(heldout_fraction=0.0)  # the stored table: every pair


@dataclass(frozen=True)
class Lake:
    name: str
    env_id: str
    env_kwargs: dict
    segment_length: int
    batch: int  # labels per round
    budget: int  # labels at most


LAKES = {
    lake.name: lake
    for lake in (
        Lake("4x4-deterministic", "FrozenLake-v1", {"is_slippery": False}, 8, 10, 300),
        Lake("8x8-deterministic", "FrozenLake8x8-v1", {"is_slippery": False}, 16, 20, 800),
        Lake("4x4-slippery", "FrozenLake-v1", {"is_slippery": True}, 8, 20, 400),
    )
}


@dataclass
class Outcome:
    lake: str
    strategy: str
    seed: int
    labels: int | None  # labels when regret first reached 0; None: not within the budget
    rounds: int
    final_regret: float  # v*(s_0) − v^π̂(s_0) at the end, true reward, γ = 0.9
    optimal_value: float  # v*(s_0)
    seconds: float


def run(*, lake: Lake, strategy: str, seed: int) -> Outcome:
    started = time.perf_counter()
    mdp = make_tabular_mdp(env_id=lake.env_id, env_kwargs=lake.env_kwargs)
    rng = np.random.default_rng(seed)
    k = lake.segment_length
    judged_a = judged_b = np.zeros((0, k, 2), dtype=np.int64)
    p_a = np.zeros(0)
    reward, policy = None, None
    selector = UCBPairSelector()
    rounds, regret = 0, float("nan")
    while len(p_a) < lake.budget:
        rounds += 1
        batch_a, batch_b, chosen = _choose_batch(
            lake=lake,
            mdp=mdp,
            strategy=strategy if reward is not None else "random",
            reward=reward,
            policy=policy,
            judged=(judged_a, judged_b),
            selector=selector,
            rng=rng,
        )
        # The rational teacher: the higher true return wins, equal returns are a tie.
        batch_p = synthetic_preferences(
            reward=mdp.rewards, segments_a=batch_a, segments_b=batch_b, seed=0, temperature=0.0
        )
        if strategy == "ucb" and reward is not None:
            surprise = preference_surprise(
                reward=reward, segments_a=batch_a, segments_b=batch_b, p_a=batch_p
            )
            selector.update(chosen, surprise)
        judged_a = np.concatenate([judged_a, batch_a])
        judged_b = np.concatenate([judged_b, batch_b])
        p_a = np.concatenate([p_a, batch_p])
        reward = fit_tabular_reward_model(
            segments_a=judged_a,
            segments_b=judged_b,
            p_a=p_a,
            n_states=mdp.n_states,
            n_actions=mdp.n_actions,
            seed=seed,
            terminal=mdp.terminal,
            config=REWARD_FIT,
        ).reward
        measured = optimal_policy_regret(mdp=mdp, learned_reward=reward, gamma=GAMMA)
        regret = measured.regret
        if regret <= 1e-9:
            break
        policy = deterministic_policy(actions=measured.policy, n_actions=mdp.n_actions)
    return Outcome(
        lake=lake.name,
        strategy=strategy,
        seed=seed,
        labels=len(p_a) if regret <= 1e-9 else None,
        rounds=rounds,
        final_regret=max(regret, 0.0),
        optimal_value=measured.optimal_value,
        seconds=round(time.perf_counter() - started, 2),
    )


def _choose_batch(
    *,
    lake: Lake,
    mdp: TabularMDP,
    strategy: str,
    reward: np.ndarray | None,
    policy: np.ndarray | None,
    judged: tuple[np.ndarray, np.ndarray],
    selector: UCBPairSelector,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segments a, segments b) of the batch, (B, k, 2) each, and the chosen candidates."""
    oversample = 1 if strategy == "random" else CANDIDATE_OVERSAMPLE
    segments = collect_tabular_segments(
        env_id=lake.env_id,
        env_kwargs=lake.env_kwargs,
        policy=None
        if policy is None
        else behaviour_policy(policy=policy, epsilon=EXPLORATION_EPSILON),
        n_segments=2 * lake.batch * oversample,
        segment_length=lake.segment_length,
        seed=int(rng.integers(2**31)),
        exploring_start_fraction=(
            EXPLORING_STARTS_WITHOUT_POLICY if policy is None else EXPLORING_STARTS_WITH_POLICY
        ),
    )
    table = np.stack([s.state_actions for s in segments])  # (M, k, 2)
    if strategy == "random":
        chosen = np.arange(lake.batch)
        return table[0::2][: lake.batch], table[1::2][: lake.batch], chosen
    candidates = random_pairs(len(segments), oversample * lake.batch, rng)
    candidates_a = table[[a for a, _ in candidates]]
    candidates_b = table[[b for _, b in candidates]]
    uncertainty = preference_uncertainty(
        reward=reward,
        judged_a=judged[0],
        judged_b=judged[1],
        candidates_a=candidates_a,
        candidates_b=candidates_b,
        weight_decay=REWARD_FIT.weight_decay,
        terminal=mdp.terminal,
    )
    if strategy == "disagreement":
        chosen = np.argsort(-uncertainty, kind="stable")[: lake.batch]
    else:
        chosen = selector.select(uncertainty, lake.batch, rng)
    return candidates_a[chosen], candidates_b[chosen], chosen


def summarise(outcomes: list[Outcome], lake: Lake, strategy: str) -> dict:
    mine = [o for o in outcomes if o.lake == lake.name and o.strategy == strategy]
    solved = [o.labels for o in mine if o.labels is not None]
    return {
        "lake": lake.name,
        "strategy": strategy,
        "solved": len(solved),
        "runs": len(mine),
        "labels_per_seed": [o.labels for o in mine],
        "median_labels": statistics.median(solved) if len(solved) == len(mine) else None,
        "mean_labels_solved": statistics.mean(solved) if solved else None,
        "median_final_regret_share": statistics.median(
            o.final_regret / o.optimal_value for o in mine
        ),
        "seconds": round(sum(o.seconds for o in mine), 1),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'lake':<18} {'selection':<13} {'solved':>6} {'median':>7} {'mean*':>7} "
        f"{'regret':>7}  labels per seed"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        median = "-" if row["median_labels"] is None else f"{row['median_labels']:g}"
        mean = "-" if row["mean_labels_solved"] is None else f"{row['mean_labels_solved']:.0f}"
        per_seed = ", ".join("-" if n is None else str(n) for n in row["labels_per_seed"])
        solved = f"{row['solved']}/{row['runs']}"
        regret = f"{100 * row['median_final_regret_share']:.1f}%"
        print(
            f"{row['lake']:<18} {row['strategy']:<13} {solved:>6} {median:>7} {mean:>7} "
            f"{regret:>7}  {per_seed}"
        )
    print("Labels until zero regret. median: of all seeds, when every seed solved it;")
    print("mean*: over the solved seeds; regret: median over seeds of the regret at the end,")
    print("as a share of v*(s_0); -: the label budget was spent with regret still above 0.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lakes", nargs="+", choices=sorted(LAKES), default=list(LAKES))
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "tabular_regret.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    outcomes = []
    for name in args.lakes:
        for strategy in args.strategies:
            for seed in range(args.seeds):
                outcomes.append(run(lake=LAKES[name], strategy=strategy, seed=seed))
    rows = [summarise(outcomes, LAKES[n], s) for n in args.lakes for s in args.strategies]
    print_table(rows)
    total = round(time.perf_counter() - started, 1)
    print(f"{total} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "gamma": GAMMA,
                "lakes": [dataclasses.asdict(LAKES[n]) for n in args.lakes],
                "summary": rows,
                "runs": [dataclasses.asdict(o) for o in outcomes],
                "seconds": total,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output.relative_to(REPO)}")


if __name__ == "__main__":
    main()
