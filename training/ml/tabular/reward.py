"""A tabular reward model r̂(s, a) fitted to preferences between segments with the
Bradley-Terry loss, and the regret of the policy that is optimal for it.

A segment σ = ((s_0, a_0), ..., (s_{k−1}, a_{k−1})) is an int array (k, 2) of (state,
action) rows; a batch of N segments is (N, k, 2). The model's return of a segment is
Σ_t r̂(s_t, a_t), and (lecture notes, "Bradley-Terry model"; Christiano et al. 2017, eq. 1)

    P̂[σ_1 ≻ σ_2] = exp Σ r̂(s¹_t, a¹_t) / (exp Σ r̂(s¹_t, a¹_t) + exp Σ r̂(s²_t, a²_t))

Terminal states are absorbing and pay nothing, so their rows of r̂ are held at 0. This also
fixes the one thing preferences leave free: adding a constant c to every r̂(s, a) changes
no comparison between two segments of equal length, unless one of them spends steps in a
terminal state, which earns 0 instead of c. Without that anchor the optimal policy of r̂
could differ from the true one (a negative c makes ending early attractive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from training.ml.bradley_terry import bradley_terry_loss
from training.ml.tabular.dynamic_programming import (
    deterministic_policy,
    policy_evaluation_closed_form,
    value_iteration,
)
from training.ml.tabular.mdp import TabularMDP


@dataclass(frozen=True)
class TabularRewardConfig:
    learning_rate: float = 0.05  # Adam, full batch
    steps: int = 500
    weight_decay: float = 1e-3  # L2 penalty on r̂, keeps unvisited (s, a) at 0
    heldout_fraction: float = 0.2  # pairs kept out of the fit to measure accuracy


class TabularRewardModel(nn.Module):
    """r̂(s, a) as a parameter table (S, A); rows of terminal states are fixed at 0."""

    def __init__(self, *, n_states: int, n_actions: int, terminal: np.ndarray | None = None):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(n_states, n_actions, dtype=torch.float64))
        running = np.ones(n_states) if terminal is None else (~np.asarray(terminal, bool))
        self.register_buffer(
            "running", torch.as_tensor(running, dtype=torch.float64)[:, None]
        )  # (S, 1)

    def reward_table(self) -> Tensor:
        """r̂(s, a), zero on terminal states. (S, A)"""
        return self.table * self.running

    def forward(self, segments: Tensor) -> Tensor:
        """Σ_t r̂(s_t, a_t) of each segment. segments: (N, k, 2) long → (N,)."""
        reward = self.reward_table()
        return reward[segments[..., 0], segments[..., 1]].sum(dim=-1)


@dataclass(frozen=True)
class TabularRewardFit:
    model: TabularRewardModel
    reward: np.ndarray  # r̂(s, a), zero on terminal states  (S, A)
    train_loss: float  # Bradley-Terry loss on the training pairs after the fit
    heldout_loss: float  # nan when no pair was held out
    heldout_accuracy: float  # share of held-out non-tie pairs ordered as judged; nan if none
    n_train: int
    n_heldout: int


def fit_tabular_reward_model(
    *,
    segments_a: np.ndarray,
    segments_b: np.ndarray,
    p_a: np.ndarray,
    n_states: int,
    n_actions: int,
    seed: int,
    terminal: np.ndarray | None = None,
    margins: np.ndarray | None = None,
    config: TabularRewardConfig | None = None,
) -> TabularRewardFit:
    """Fit r̂ by minimising the Bradley-Terry loss over pairs (σ_a, σ_b).

    segments_a, segments_b: (N, k, 2) int (state, action) rows. p_a: (N,) the judged
    probability that a is preferred (1, 0 or 0.5 for a tie; see PREFERENCE_TARGET), or
    soft targets in its place. margins: (N,) Llama 2's m(strength) per pair, signed towards
    a by its judged label (bradley_terry.signed_margins); None: 0, the plain loss.
    terminal: (S,) bool, rows of r̂ held at 0. `seed` draws the held-out split.
    """
    config = config or TabularRewardConfig()
    segments_a, segments_b, p_a = _check_pairs(
        segments_a=segments_a,
        segments_b=segments_b,
        p_a=p_a,
        n_states=n_states,
        n_actions=n_actions,
    )
    n_pairs = len(p_a)
    order = np.random.default_rng(seed).permutation(n_pairs)
    n_heldout = round(config.heldout_fraction * n_pairs)
    heldout, train = order[:n_heldout], order[n_heldout:]
    if len(train) == 0:
        raise ValueError(f"No training pairs left out of {n_pairs}; lower heldout_fraction.")

    seg_a = torch.as_tensor(segments_a, dtype=torch.long)  # (N, k, 2)
    seg_b = torch.as_tensor(segments_b, dtype=torch.long)
    target = torch.as_tensor(p_a, dtype=torch.float64)  # (N,)
    margin = torch.zeros(n_pairs, dtype=torch.float64)
    if margins is not None:
        margin = torch.as_tensor(np.asarray(margins), dtype=torch.float64)  # (N,)
    model = TabularRewardModel(n_states=n_states, n_actions=n_actions, terminal=terminal)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    train_idx = torch.as_tensor(train)
    for _ in range(config.steps):
        optimizer.zero_grad()
        # −[p log σ(R_a − R_b) + (1 − p) log σ(R_b − R_a)], R = Σ_t r̂(s_t, a_t)
        loss = bradley_terry_loss(
            model(seg_a[train_idx]), model(seg_b[train_idx]), target[train_idx], margin[train_idx]
        )
        loss = loss + config.weight_decay * model.reward_table().pow(2).sum()
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        returns_a, returns_b = model(seg_a), model(seg_b)  # (N,)
        train_loss = bradley_terry_loss(
            returns_a[train_idx], returns_b[train_idx], target[train_idx], margin[train_idx]
        ).item()
        heldout_loss = heldout_accuracy = float("nan")
        if n_heldout:
            held_idx = torch.as_tensor(heldout)
            heldout_loss = bradley_terry_loss(
                returns_a[held_idx], returns_b[held_idx], target[held_idx], margin[held_idx]
            ).item()
            heldout_accuracy = preference_accuracy(
                returns_a=returns_a[held_idx].numpy(),
                returns_b=returns_b[held_idx].numpy(),
                p_a=p_a[heldout],
            )
        reward = model.reward_table().numpy().copy()
    return TabularRewardFit(
        model=model,
        reward=reward,
        train_loss=train_loss,
        heldout_loss=heldout_loss,
        heldout_accuracy=heldout_accuracy,
        n_train=len(train),
        n_heldout=n_heldout,
    )


def preference_accuracy(*, returns_a: np.ndarray, returns_b: np.ndarray, p_a: np.ndarray) -> float:
    """Share of non-tie pairs (p_a ≠ 0.5) whose modelled order matches the judged one; a
    modelled tie counts half. nan when every pair is a tie."""
    judged = p_a != 0.5
    if not judged.any():
        return float("nan")
    diff = (returns_a - returns_b)[judged]
    preferred_a = p_a[judged] > 0.5
    correct = np.where(diff == 0, 0.5, (diff > 0) == preferred_a)
    return float(correct.mean())


@dataclass(frozen=True)
class PolicyRegret:
    regret: float  # v*(start) − v^π̂(start) on the true reward, ≥ 0 up to rounding
    optimal_value: float  # Σ_s d_0(s) v*(s), true reward
    policy_value: float  # Σ_s d_0(s) v^π̂(s), true reward
    policy: np.ndarray  # π̂, optimal for the learned reward  (S,) int


def optimal_policy_regret(
    *, mdp: TabularMDP, learned_reward: np.ndarray | Tensor, gamma: float
) -> PolicyRegret:
    """How much true return the optimal policy of r̂ gives up.

    Value iteration on r̂ gives π̂ = argmax_a q*_r̂(s, a); π̂ and the true optimal policy are
    then evaluated exactly on the true reward, v = (I − γP^π)⁻¹ r^π, and compared at the
    start-state distribution d_0 of the env. learned_reward: (S, A), its terminal rows are
    ignored.
    """
    if isinstance(learned_reward, Tensor):
        learned_reward = learned_reward.detach().cpu().numpy()
    learned_mdp = mdp.with_rewards(rewards=np.asarray(learned_reward, dtype=np.float64))
    learned_policy = value_iteration(mdp=learned_mdp, gamma=gamma).policy
    true_policy = value_iteration(mdp=mdp, gamma=gamma).policy

    def start_value(actions: np.ndarray) -> float:
        policy = deterministic_policy(actions=actions, n_actions=mdp.n_actions)
        v = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=gamma).v
        return float(mdp.initial_distribution @ v)  # Σ_s d_0(s) v(s)

    optimal_value, policy_value = start_value(true_policy), start_value(learned_policy)
    return PolicyRegret(
        regret=optimal_value - policy_value,
        optimal_value=optimal_value,
        policy_value=policy_value,
        policy=learned_policy,
    )


# --- synthetic data for tests and benchmarks --------------------------------------------


def sample_segments(
    *, mdp: TabularMDP, n_segments: int, length: int, seed: int, policy: np.ndarray | None = None
) -> np.ndarray:
    """Segments drawn from the model: s_0 uniform over non-terminal states, a_t ~ π(·|s_t)
    (uniform when policy is None), s_{t+1} ~ p(·|s_t, a_t); a segment that reaches a
    terminal state stays there. Returns (n_segments, length, 2) int."""
    rng = np.random.default_rng(seed)
    policy = (
        np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions) if policy is None else policy
    )
    starts = np.flatnonzero(~mdp.terminal)
    segments = np.zeros((n_segments, length, 2), dtype=np.int64)
    states = rng.choice(starts, size=n_segments)
    for t in range(length):
        actions = _sample_rows(probabilities=policy[states], rng=rng)
        segments[:, t, 0], segments[:, t, 1] = states, actions
        states = _sample_rows(probabilities=mdp.transitions[states, actions], rng=rng)
    return segments


def synthetic_preferences(
    *,
    reward: np.ndarray,
    segments_a: np.ndarray,
    segments_b: np.ndarray,
    seed: int,
    temperature: float = 1.0,
) -> np.ndarray:
    """A Bradley-Terry teacher on the true reward (S, A), R = Σ_t reward(s_t, a_t).

    Judges a ≻ b with probability σ((R_a − R_b) / temperature); temperature 0 always
    prefers the higher return. Equal returns are judged a tie (0.5), as a person who sees
    no difference would. Returns p_a (N,) in {0, 0.5, 1}.
    """
    returns_a = reward[segments_a[..., 0], segments_a[..., 1]].sum(axis=-1)  # (N,)
    returns_b = reward[segments_b[..., 0], segments_b[..., 1]].sum(axis=-1)
    difference = returns_a - returns_b
    if temperature == 0.0:
        prefers_a = difference > 0
    else:
        p_prefer_a = 1.0 / (1.0 + np.exp(-difference / temperature))  # σ(ΔR / T)
        prefers_a = np.random.default_rng(seed).random(len(difference)) < p_prefer_a
    return np.where(np.isclose(difference, 0.0), 0.5, prefers_a.astype(np.float64))


def _sample_rows(*, probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of a (N, K) matrix of distributions, by inverting each CDF."""
    cumulative = probabilities.cumsum(axis=1)  # (N, K)
    draws = rng.random((len(probabilities), 1))
    return np.minimum((cumulative <= draws).sum(axis=1), probabilities.shape[1] - 1)


def _check_pairs(
    *,
    segments_a: np.ndarray,
    segments_b: np.ndarray,
    p_a: np.ndarray,
    n_states: int,
    n_actions: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    segments_a, segments_b = np.asarray(segments_a), np.asarray(segments_b)
    p_a = np.asarray(p_a, dtype=np.float64)
    if segments_a.ndim != 3 or segments_a.shape[-1] != 2 or segments_a.shape != segments_b.shape:
        raise ValueError(
            f"segments_a {segments_a.shape} and segments_b {segments_b.shape} must both be "
            "(N, k, 2) arrays of (state, action) rows."
        )
    if p_a.shape != (segments_a.shape[0],):
        raise ValueError(f"p_a has shape {p_a.shape}; expected ({segments_a.shape[0]},).")
    for name, segments in (("segments_a", segments_a), ("segments_b", segments_b)):
        states, actions = segments[..., 0], segments[..., 1]
        if (
            states.min() < 0
            or states.max() >= n_states
            or actions.min() < 0
            or actions.max() >= n_actions
        ):
            raise ValueError(
                f"{name} holds a state outside [0, {n_states}) or an action outside "
                f"[0, {n_actions})."
            )
    return segments_a, segments_b, p_a
