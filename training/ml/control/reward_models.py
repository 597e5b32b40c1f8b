"""A reward model r̂(o, a) learned from preferences over segments (Christiano et al. 2017).

§2.2.3: r̂ is fitted so that σ(Σ r̂ over segment a − Σ r̂ over segment b) predicts the
judgement (the Bradley-Terry model, training/ml/bradley_terry.py). As in the paper's §2.2.3
we fit an ensemble of predictors, each on a bootstrap sample of the judgements, with L2
regularisation; inputs are normalised; the ensemble mean is the reward, and its output is
normalised to zero mean and a constant standard deviation before the policy sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from training.ml.bradley_terry import bradley_terry_loss, signed_margins
from training.ml.control.rollouts import Segment
from training.ml.control.spaces import ActionSpec, encode_actions, env_spaces
from training.ml.reliability import (
    Fit,
    FlipRates,
    ReliabilityConfig,
    em_epochs,
    fit_with_reliability,
)
from training.ml.seeding import torch_seeded

# A judged pair: (segment a, segment b, P[a ≻ b]) with P = 1 (left), 0 (right), 0.5 (tie).
JudgedPair = tuple[Segment, Segment, float]


class RunningNorm(nn.Module):
    """x ↦ (x − mean) / sqrt(var + ε) with a running mean and variance.

    Batches are merged with Chan et al.'s parallel form of Welford's update. With
    ``max_count`` the count stops growing there, so the statistics weigh recent batches
    like an exponential moving average over roughly the last max_count samples. Outputs are
    clipped to ±clip, so a feature that was constant in the data cannot explode."""

    def __init__(
        self,
        shape: int | tuple[int, ...] = (),
        *,
        epsilon: float = 1e-8,
        max_count: float = 0,
        clip: float = 10.0,
    ) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.epsilon = epsilon
        self.max_count = max_count  # 0: no cap
        self.clip = clip
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge a batch x (B, *shape) into the statistics."""
        x = x.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        batch_count = x.shape[0]
        if batch_count == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        new_mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count
        m2 = m2 + delta.square() * self.count * batch_count / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(torch.clamp(total, max=self.max_count) if self.max_count else total)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var + self.epsilon).to(x.dtype)
        return ((x - mean) / std).clamp(-self.clip, self.clip)


@dataclass(frozen=True)
class RewardModelConfig:
    obs_dim: int
    action_spec: ActionSpec
    hidden_sizes: tuple[int, ...] = (64, 64)
    n_members: int = 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "action_spec": self.action_spec.to_dict(),
            "hidden_sizes": list(self.hidden_sizes),
            "n_members": self.n_members,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RewardModelConfig:
        return cls(
            obs_dim=int(data["obs_dim"]),
            action_spec=ActionSpec.from_dict(data["action_spec"]),
            hidden_sizes=tuple(int(h) for h in data["hidden_sizes"]),
            n_members=int(data["n_members"]),
        )


class RewardMLP(nn.Module):
    """r̂(o, a): normalised observation (…, obs_dim) ⊕ encoded action (…, act_enc) → (…,).

    Two hidden layers of leaky ReLUs, as in Christiano et al. 2017, appendix A.1."""

    def __init__(self, *, in_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for hidden in hidden_sizes:
            layers += [nn.Linear(in_dim, hidden), nn.LeakyReLU(0.01)]
            in_dim = hidden
        layers.append(nn.Linear(in_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: Tensor, encoded_actions: Tensor) -> Tensor:
        return self.net(torch.cat([obs, encoded_actions], dim=-1)).squeeze(-1)


class RewardEnsemble(nn.Module):
    """E reward predictors sharing one input normaliser.

    obs_norm: running statistics of the training observations (the inputs' normaliser).
    reward_norm: statistics of the ensemble-mean r̂ over the training observations, set by
    fit_reward_ensemble; NormalizedReward starts from them."""

    def __init__(self, config: RewardModelConfig, *, seed: int = 0) -> None:
        super().__init__()
        if config.n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {config.n_members}.")
        self.config = config
        self.obs_norm = RunningNorm(config.obs_dim)
        self.reward_norm = RunningNorm(())
        in_dim = config.obs_dim + config.action_spec.encoded_dim
        with torch_seeded(seed):
            self.members = nn.ModuleList(
                RewardMLP(in_dim=in_dim, hidden_sizes=config.hidden_sizes)
                for _ in range(config.n_members)
            )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def member_rewards(self, obs: Tensor, actions: Tensor, *, member: int) -> Tensor:
        """r̂_member(o, a): obs (..., obs_dim), actions (...,) or (..., act_dim) → (...,)."""
        encoded = encode_actions(actions, self.config.action_spec)
        return self.members[member](self.obs_norm(obs), encoded)

    def step_rewards(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Every member's r̂(o, a): (..., obs_dim), (...[, act_dim]) → (E, ...)."""
        normed = self.obs_norm(obs)
        encoded = encode_actions(actions, self.config.action_spec)
        return torch.stack([member(normed, encoded) for member in self.members])

    def segment_returns(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Σ_t r̂(o_t, a_t) per member: obs (N, T, obs_dim), actions (N, T[, act_dim]) →
        (E, N)."""
        return self.step_rewards(obs, actions).sum(-1)

    def mean_reward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The ensemble-mean r̂(o, a), unnormalised: (..., obs_dim) → (...,)."""
        return self.step_rewards(obs, actions).mean(0)


def reward_ensemble_for_env(
    env_id: str,
    *,
    hidden_sizes: tuple[int, ...] = (64, 64),
    n_members: int = 3,
    seed: int = 0,
) -> RewardEnsemble:
    """A freshly initialised RewardEnsemble sized for a gymnasium environment."""
    obs_dim, action_spec = env_spaces(env_id)
    config = RewardModelConfig(
        obs_dim=obs_dim, action_spec=action_spec, hidden_sizes=hidden_sizes, n_members=n_members
    )
    return RewardEnsemble(config, seed=seed)


def segments_to_tensors(
    segments: Sequence[Segment], *, device: torch.device | str
) -> tuple[Tensor, Tensor]:
    """Stack equal-length segments: observations (N, T, obs_dim) float32 and actions
    (N, T) int64 or (N, T, act_dim) float32."""
    lengths = {len(segment) for segment in segments}
    if len(lengths) != 1:
        raise ValueError(f"Segments must all have one length to be stacked, got {sorted(lengths)}.")
    obs = torch.as_tensor(np.stack([s.observations for s in segments]), device=device)
    actions = np.stack([s.actions for s in segments])
    dtype = torch.int64 if np.issubdtype(actions.dtype, np.integer) else torch.float32
    return obs.float(), torch.as_tensor(actions, dtype=dtype, device=device)


class NormalizedReward:
    """The reward the policy learns from: the ensemble-mean r̂(o, a), normalised to zero mean
    and standard deviation ``scale`` (Christiano et al. 2017, §2.2.1).

    The statistics start from the ones fit_reward_ensemble computed over the training
    segments and, with update_stats=True, follow the rewards given since (the policy's own,
    recent samples; the count is capped at ``window`` so old samples fade). Call it as
    reward_fn(obs (N, obs_dim), actions (N[, act_dim])) → (N,)."""

    def __init__(
        self,
        ensemble: RewardEnsemble,
        *,
        scale: float = 1.0,
        update_stats: bool = True,
        window: int = 100_000,
    ) -> None:
        self.ensemble = ensemble
        self.scale = scale
        self.update_stats = update_stats
        self.norm = RunningNorm((), max_count=window).to(ensemble.device)
        self.norm.load_state_dict(ensemble.reward_norm.state_dict())

    @torch.no_grad()
    def __call__(self, obs: Tensor, actions: Tensor) -> Tensor:
        self.ensemble.eval()
        device = self.ensemble.device
        rewards = self.ensemble.mean_reward(obs.to(device), actions.to(device))  # (N,)
        if self.update_stats:
            self.norm.update(rewards)
        return (self.norm(rewards) * self.scale).to(obs.device)


@dataclass(frozen=True)
class RewardFitMetrics:
    """train_loss / heldout_loss: Bradley-Terry loss of the ensemble-mean returns against
    the labels as judged. heldout_accuracy: fraction of held-out non-tie pairs the ensemble
    mean ranks as judged. None where there is nothing held out (or no non-tie pair held
    out). reliability: each annotator's estimated flip rate, when the fit estimated them."""

    train_loss: float
    heldout_loss: float | None
    heldout_accuracy: float | None
    n_train: int
    n_heldout: int
    reliability: FlipRates | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: v for k, v in asdict(self).items() if k != "reliability"}

    def as_metrics(self) -> dict[str, float | int | None]:
        return {
            "losses/train_loss": self.train_loss,
            "losses/heldout_loss": self.heldout_loss,
            "charts/heldout_accuracy": self.heldout_accuracy,
            "charts/n_train": self.n_train,
            "charts/n_heldout": self.n_heldout,
        }


@torch.no_grad()
def _ensemble_mean_metrics(
    ensemble: RewardEnsemble, batch: tuple[Tensor, ...]
) -> tuple[float, float | None]:
    obs_a, act_a, obs_b, act_b, p_a, margin = batch
    returns_a = ensemble.segment_returns(obs_a, act_a).mean(0)  # (N,)
    returns_b = ensemble.segment_returns(obs_b, act_b).mean(0)  # (N,)
    loss = float(bradley_terry_loss(returns_a, returns_b, p_a, margin))
    decided = p_a != 0.5
    if not bool(decided.any()):
        return loss, None
    right = (returns_a > returns_b)[decided] == (p_a[decided] == 1.0)
    return loss, float(right.float().mean())


def fit_reward_ensemble(
    *,
    ensemble: RewardEnsemble,
    pairs: Sequence[JudgedPair],
    epochs: int = 50,
    lr: float = 1e-3,
    batch_size: int = 64,
    holdout_fraction: float = 0.2,
    seed: int,
    device: torch.device | str = "cpu",
    weight_decay: float = 1e-4,
    annotators: Sequence[Hashable] | None = None,
    reliability: ReliabilityConfig | None = None,
    margins: Sequence[float] | None = None,
    progress: Callable[[float], None] | None = None,
) -> RewardFitMetrics:
    """Fit the ensemble in place on judged pairs by minimising the Bradley-Terry loss of
    segment returns (Christiano et al. 2017, eq. 1), each member on its own bootstrap
    sample of the training pairs.

    pairs: (segment a, segment b, p_a) with p_a in {1, 0, 0.5}; all segments one length.
    holdout_fraction of the pairs (chosen with ``seed``) is held out for the metrics.
    weight_decay: L2 regularisation (the paper's §2.2.3). progress(fraction) after each epoch.
    With ``reliability`` (and ``annotators``, who gave each pair's label), each annotator's
    flip rate is learned with the reward by EM (training/ml/reliability.py): the members
    are fitted on the soft targets of eq. (4), and the E-step judges each training label by
    the members that did not train on it (out of their bootstrap sample); held-out labels
    take no part. The metrics are measured against the labels as judged either way.
    margins: per pair m ≥ 0, the margin its judged winner's return must clear (Llama 2's
    m(strength), bradley_terry.py; None: 0 for every pair), in the loss and its metrics.
    The ensemble is moved to ``device``.
    """
    if not pairs:
        raise ValueError("No judged pairs to fit: collect some judgements first.")
    for _, _, p in pairs:
        if p not in (0.0, 0.5, 1.0):
            raise ValueError(f"p_a must be 1 (left), 0 (right) or 0.5 (tie), got {p!r}.")
    lengths = {len(segment) for a, b, _ in pairs for segment in (a, b)}
    if len(lengths) != 1:
        raise ValueError(
            f"All segments must have one length to be fitted together, got {sorted(lengths)}."
        )
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}.")
    if reliability is not None and (annotators is None or len(annotators) != len(pairs)):
        raise ValueError("Reliability weighting needs the annotator of every pair.")
    if margins is not None and (len(margins) != len(pairs) or min(margins, default=0) < 0):
        raise ValueError("margins must give every pair a margin m ≥ 0.")

    rng = np.random.default_rng(seed)
    n = len(pairs)
    n_heldout = min(round(holdout_fraction * n), n - 1)
    order = rng.permutation(n)
    heldout, train = order[:n_heldout], order[n_heldout:]

    ensemble.to(device)
    obs_a, act_a = segments_to_tensors([a for a, _, _ in pairs], device=device)  # (n, T, D)
    obs_b, act_b = segments_to_tensors([b for _, b, _ in pairs], device=device)
    p_a = torch.tensor([p for _, _, p in pairs], dtype=torch.float32, device=device)  # (n,)
    margin = signed_margins(
        p_a, torch.tensor(margins or [0.0] * n, dtype=torch.float32, device=device)
    )  # (n,) towards the judged winner

    # Input statistics from the training pairs' segments, each segment counted once.
    train_segments = {id(s): s for i in train for s in pairs[i][:2]}
    ensemble.obs_norm.update(
        torch.as_tensor(
            np.concatenate([s.observations for s in train_segments.values()]), device=device
        )
    )

    optimizer = torch.optim.Adam(ensemble.parameters(), lr=lr, weight_decay=weight_decay)
    bootstraps = [rng.choice(train, size=len(train), replace=True) for _ in ensemble.members]
    epochs_done = 0

    def train_epochs(targets: Tensor, n_epochs: int) -> None:
        nonlocal epochs_done
        ensemble.train()
        for _ in range(n_epochs):
            shuffled = [rng.permutation(sample) for sample in bootstraps]
            for start in range(0, len(train), batch_size):
                loss = torch.zeros((), device=device)
                for member, sample in enumerate(shuffled):
                    idx = torch.as_tensor(sample[start : start + batch_size], device=device)
                    returns_a = ensemble.member_rewards(obs_a[idx], act_a[idx], member=member)
                    returns_b = ensemble.member_rewards(obs_b[idx], act_b[idx], member=member)
                    # Christiano et al. 2017, eq. 1, on this member's bootstrap batch.
                    loss = loss + bradley_terry_loss(
                        returns_a.sum(-1), returns_b.sum(-1), targets[idx], margin[idx]
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            epochs_done += 1
            if progress is not None:
                progress(min(1.0, epochs_done / epochs))
        ensemble.eval()

    found = None
    with torch_seeded(seed, device=device):
        if reliability is None:
            train_epochs(p_a, epochs)
        else:
            schedule = em_epochs(epochs, reliability.em_iterations)
            # Out of bag: the pairs each member did not train on, (E, n) bool.
            out_of_bag = torch.ones(len(bootstraps), n, dtype=torch.bool)
            for member, sample in enumerate(bootstraps):
                out_of_bag[member, torch.as_tensor(np.unique(sample))] = False
            usable = torch.zeros(n, dtype=torch.bool)
            usable[torch.as_tensor(train)] = True

            def fit(targets: Tensor, iteration: int) -> Fit:
                train_epochs(targets.to(device=device, dtype=torch.float32), schedule[iteration])
                with torch.no_grad():
                    margins = (
                        ensemble.segment_returns(obs_a, act_a)
                        - ensemble.segment_returns(obs_b, act_b)
                    ).cpu()  # (E, n)
                oob = out_of_bag.to(margins.dtype)
                judged = oob.sum(0)  # members that can judge each pair out of sample
                oob_mean = (margins * oob).sum(0) / judged.clamp(min=1)
                # A pair in every member's sample is judged by the whole ensemble, in
                # sample (a smooth reward seldom fits a label its neighbours contradict;
                # margin 0 there, i.e. q = ε_a, measured worse), and not counted in ε. ε
                # rests on the training labels only, so the held-out metrics stay unseen.
                margins = torch.where(judged > 0, oob_mean, margins.mean(0))
                return Fit(margins, out_of_sample=usable & (judged > 0))

            found = fit_with_reliability(
                fit=fit, p_a=p_a.cpu(), annotators=annotators, config=reliability
            )

    def subset(indices: np.ndarray) -> tuple[Tensor, ...]:
        idx = torch.as_tensor(indices, device=device)
        return obs_a[idx], act_a[idx], obs_b[idx], act_b[idx], p_a[idx], margin[idx]

    train_loss, _ = _ensemble_mean_metrics(ensemble, subset(train))
    heldout_loss, heldout_accuracy = (
        _ensemble_mean_metrics(ensemble, subset(heldout)) if n_heldout else (None, None)
    )

    # Output statistics for NormalizedReward: r̂ over every training observation.
    with torch.no_grad():
        train_idx = torch.as_tensor(train, device=device)
        step_rewards = torch.cat(
            [
                ensemble.mean_reward(obs_a[train_idx], act_a[train_idx]).flatten(),
                ensemble.mean_reward(obs_b[train_idx], act_b[train_idx]).flatten(),
            ]
        )
    ensemble.reward_norm.load_state_dict(RunningNorm(()).state_dict())
    ensemble.reward_norm.update(step_rewards)

    return RewardFitMetrics(
        train_loss=train_loss,
        heldout_loss=heldout_loss,
        heldout_accuracy=heldout_accuracy,
        n_train=len(train),
        n_heldout=n_heldout,
        reliability=found,
    )
