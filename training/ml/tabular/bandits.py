"""Multi-armed bandits (lecture notes, "Exploration and Exploitation"): ε-greedy and UCB on
the k-armed Gaussian testbed (Sutton & Barto §2.3), and UCB as the strategy that picks which
candidate pairs go to annotators in the preference loop.

Both learners keep the sample-average estimate Q_t(a) of each arm and choose

    ε-greedy:  A_t = argmax_a Q_t(a) with probability 1 − ε, else a uniformly random arm
    UCB:       A_t = argmax_a [Q_t(a) + c √(log t / N_t(a))]   (an arm with N_t(a) = 0 first)

Regret here is the pseudo-regret Σ_t [q*(a*) − q*(A_t)], the expected reward given up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EpsilonGreedyConfig:
    steps: int = 1_000
    epsilon: float = 0.1


@dataclass(frozen=True)
class UCBConfig:
    steps: int = 1_000
    c: float = 2.0  # exploration weight of the confidence bonus


class GaussianBandit:
    """k arms with true values q*(a) ~ N(0, 1) drawn from `seed`; a pull of a pays
    R ~ N(q*(a), 1). Holds no random state: each pull takes the caller's generator."""

    def __init__(self, k: int = 10, seed: int = 0) -> None:
        if k < 2:
            raise ValueError(f"k = {k}; a bandit needs at least 2 arms.")
        self.k = k
        self.means = np.random.default_rng(seed).normal(0.0, 1.0, size=k)  # q*(a)  (k,)
        self.optimal_action = int(np.argmax(self.means))

    def pull(self, *, action: int, rng: np.random.Generator) -> float:
        return float(rng.normal(self.means[action], 1.0))

    def regret(self, *, action: int) -> float:
        """q*(a*) − q*(a): the expected reward given up by pulling `action`."""
        return float(self.means[self.optimal_action] - self.means[action])


@dataclass(frozen=True)
class BanditRun:
    actions: np.ndarray  # A_t  (T,) int
    rewards: np.ndarray  # R_t  (T,)
    regret: np.ndarray  # q*(a*) − q*(A_t) per step  (T,)

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)  # (T,)

    def optimal_action_fraction(self, *, optimal_action: int) -> float:
        return float(np.mean(self.actions == optimal_action))


def run_epsilon_greedy(
    *, bandit: GaussianBandit, seed: int, config: EpsilonGreedyConfig | None = None
) -> BanditRun:
    """ε-greedy with sample-average estimates, Q_0 = 0, ties broken at random."""
    config = config or EpsilonGreedyConfig()
    rng = np.random.default_rng(seed)
    q, n = np.zeros(bandit.k), np.zeros(bandit.k)  # Q_t(a), N_t(a)
    actions = np.zeros(config.steps, dtype=np.int64)
    rewards, regret = np.zeros(config.steps), np.zeros(config.steps)
    for t in range(config.steps):
        if rng.random() < config.epsilon:
            action = int(rng.integers(bandit.k))  # explore
        else:
            action = _argmax_random_ties(values=q, rng=rng)  # A_t = argmax_a Q_t(a)
        reward = bandit.pull(action=action, rng=rng)
        n[action] += 1
        q[action] += (reward - q[action]) / n[action]  # sample average
        actions[t], rewards[t], regret[t] = action, reward, bandit.regret(action=action)
    return BanditRun(actions=actions, rewards=rewards, regret=regret)


def run_ucb(*, bandit: GaussianBandit, seed: int, config: UCBConfig | None = None) -> BanditRun:
    """UCB1-style selection with sample-average estimates; every arm is pulled once first."""
    config = config or UCBConfig()
    rng = np.random.default_rng(seed)
    q, n = np.zeros(bandit.k), np.zeros(bandit.k)
    actions = np.zeros(config.steps, dtype=np.int64)
    rewards, regret = np.zeros(config.steps), np.zeros(config.steps)
    for t in range(1, config.steps + 1):
        action = _argmax_random_ties(values=_ucb_scores(q=q, n=n, t=t, c=config.c), rng=rng)
        reward = bandit.pull(action=action, rng=rng)
        n[action] += 1
        q[action] += (reward - q[action]) / n[action]
        actions[t - 1], rewards[t - 1] = action, reward
        regret[t - 1] = bandit.regret(action=action)
    return BanditRun(actions=actions, rewards=rewards, regret=regret)


@dataclass
class UCBPairSelector:
    """UCB over kinds of candidate pairs, for choosing which pairs annotators judge next.

    Arms. Individual candidate pairs change every round, so they cannot be arms. Instead the
    candidates of a round are ranked by a score the platform computes for every pair (for
    example the reward-model ensemble's disagreement about which segment is better) and cut
    into `n_arms` equal quantile bins: arm 0 holds the lowest-scoring share, arm n_arms − 1
    the highest. "The most disputed fifth" is an arm that exists in every round.

    Reward. After the chosen pairs are judged, `update` receives how informative each one
    proved, for example the drop of the Bradley-Terry loss on the other pairs when the reward
    model is refitted with it, or the surprise −log P̂(judgement) under the model that
    chose it; 0 for a skipped pair. Q(j) is the sample average for arm j.

    Selection. Each of the n_pairs picks takes the arm maximising Q(j) + c √(log t / N(j))
    among arms with candidates left (an untried arm first), then a uniformly random
    candidate of that arm. Picks already made in the batch count as pulls of their arm for
    the bonus, so a batch spreads out instead of repeating one arm. So the loop learns
    whether the most disputed pairs are really the most informative ones, or whether they
    are the ones people cannot tell apart.

    State is plain arrays (`counts`, `values`, `pending`), so a Celery task can store it in
    a JSON field (`to_state` / `from_state`) between selecting pairs and reading judgements.
    """

    n_arms: int = 5
    c: float = 1.0  # exploration weight; rewards of scale ~1 suit c ≈ 1
    counts: np.ndarray | None = None  # N(j), judged pairs per arm  (n_arms,)
    values: np.ndarray | None = None  # Q(j), mean informativeness  (n_arms,)
    pending: dict[int, int] = field(default_factory=dict)  # candidate index → arm, last select

    def __post_init__(self) -> None:
        if self.n_arms < 1:
            raise ValueError(f"n_arms = {self.n_arms}; need at least one arm.")
        self.counts = (
            np.zeros(self.n_arms) if self.counts is None else np.asarray(self.counts, float)
        )
        self.values = (
            np.zeros(self.n_arms) if self.values is None else np.asarray(self.values, float)
        )

    def arms_of(self, candidate_scores: np.ndarray) -> np.ndarray:
        """The arm (score quantile bin) of each candidate. (n_candidates,) int"""
        scores = np.asarray(candidate_scores, dtype=np.float64)
        if scores.ndim != 1 or not np.all(np.isfinite(scores)):
            raise ValueError("candidate_scores must be a 1-D array of finite numbers.")
        ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable")  # 0 = lowest
        return ranks * self.n_arms // len(scores)

    def select(
        self, candidate_scores: np.ndarray, n_pairs: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Indices of `n_pairs` distinct candidates to send to annotators. (n_pairs,) int

        Replaces the pending picks of the previous selection: pairs never judged are
        forgotten.
        """
        arms = self.arms_of(candidate_scores)
        if not 1 <= n_pairs <= len(arms):
            raise ValueError(f"n_pairs = {n_pairs}; choose between 1 and {len(arms)} candidates.")
        remaining = [list(rng.permutation(np.flatnonzero(arms == j))) for j in range(self.n_arms)]
        counts = self.counts.copy()
        self.pending = {}
        chosen = []
        for _ in range(n_pairs):
            t = counts.sum() + 1
            scores = _ucb_scores(q=self.values, n=counts, t=t, c=self.c)
            scores[[not left for left in remaining]] = -np.inf  # empty arms cannot be pulled
            arm = _argmax_random_ties(values=scores, rng=rng)
            index = int(remaining[arm].pop())
            counts[arm] += 1  # a pending pull: shrinks this arm's bonus within the batch
            self.pending[index] = arm
            chosen.append(index)
        return np.asarray(chosen, dtype=np.int64)

    def update(self, indices: np.ndarray, rewards: np.ndarray) -> None:
        """Record the informativeness of judged pairs from the last `select`."""
        indices, rewards = np.asarray(indices), np.asarray(rewards, dtype=np.float64)
        if indices.shape != rewards.shape:
            raise ValueError(
                f"indices {indices.shape} and rewards {rewards.shape} differ in shape."
            )
        unknown = [int(i) for i in indices if int(i) not in self.pending]
        if unknown:
            raise ValueError(
                f"Candidates {unknown} were not chosen by the last select (or were already "
                "updated); pass only indices that select returned."
            )
        for index, reward in zip(indices, rewards, strict=True):
            arm = self.pending.pop(int(index))
            self.counts[arm] += 1
            self.values[arm] += (reward - self.values[arm]) / self.counts[arm]  # sample average

    def to_state(self) -> dict:
        """JSON-serialisable state."""
        return {
            "n_arms": self.n_arms,
            "c": self.c,
            "counts": self.counts.tolist(),
            "values": self.values.tolist(),
            "pending": {str(index): arm for index, arm in self.pending.items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> UCBPairSelector:
        return cls(
            n_arms=int(state["n_arms"]),
            c=float(state["c"]),
            counts=np.asarray(state["counts"], dtype=np.float64),
            values=np.asarray(state["values"], dtype=np.float64),
            pending={int(index): int(arm) for index, arm in state["pending"].items()},
        )


def _ucb_scores(*, q: np.ndarray, n: np.ndarray, t: float, c: float) -> np.ndarray:
    """Q_t(a) + c √(log t / N_t(a)), +∞ where N_t(a) = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bonus = c * np.sqrt(np.log(t) / n)
    return np.where(n == 0, np.inf, q + bonus)


def _argmax_random_ties(*, values: np.ndarray, rng: np.random.Generator) -> int:
    best = np.flatnonzero(values == values.max())
    return int(best[rng.integers(len(best))])
