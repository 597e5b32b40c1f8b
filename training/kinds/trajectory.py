"""The trajectory loop (Christiano et al. 2017): a Bradley-Terry reward ensemble over
(o, a), a policy-gradient optimiser against its normalised mean, and pairs of new segments
chosen at random or by the ensemble's disagreement, with clips for the chosen ones only.

Every step runs on the project's device (training/devices.py) in fp32: config.dtype is
accepted but the control nets are too small for bf16 to pay. Checkpoints hold CPU tensors
and load onto whichever device the step has.
"""

from __future__ import annotations

import numpy as np
import torch

from labeling.models import Item, Project
from labeling.preferences import both_bad_count
from training import artifacts
from training.artifacts import NewItem
from training.devices import step_device, worker_device
from training.kinds.config import TrajectoryConfig, strength_margin
from training.kinds.reliability import reliability_metrics, reliability_settings
from training.ml.control import checkpoints, replay, selection
from training.ml.control.actor_critic import A2CConfig, train_a2c
from training.ml.control.policies import ActorCritic, policy_for_env
from training.ml.control.policy_gradient import ReinforceConfig, train_reinforce
from training.ml.control.ppo import PPOConfig, train_ppo
from training.ml.control.reward_models import (
    NormalizedReward,
    fit_reward_ensemble,
    reward_ensemble_for_env,
)
from training.ml.control.rollouts import Segment, episode_returns
from training.ml.control.training_state import TrainingState
from training.models import Policy, RewardModel
from training.selectors import comparison_batches_made
from training.steps import StepContext, StepResult, finite_metrics, new_version, reward_fit_metrics

OPTIMIZERS = {"reinforce": train_reinforce, "a2c": train_a2c, "ppo": train_ppo}
OPTIMIZER_CONFIGS = {"reinforce": ReinforceConfig, "a2c": A2CConfig, "ppo": PPOConfig}
# Hyperparameters by action-space family, under the project's own overrides (config.ppo,
# config.a2c, config.reinforce). Discrete: the optimisers' defaults, tuned on CartPole-v1
# (tests/ml). Continuous PPO: the PPO paper's MuJoCo settings (Schulman et al. 2017,
# Table 3: horizon 2048 = 8 envs × 256 steps, Adam 3e-4, 10 epochs, minibatches of 64,
# λ = 0.95) with the plain clipped objective (no KL penalty).
OPTIMIZER_DEFAULTS = {
    "discrete": {"ppo": {}, "a2c": {}, "reinforce": {}},
    "continuous": {
        "ppo": {
            "num_envs": 8,
            "num_steps": 256,
            "learning_rate": 3e-4,
            "update_epochs": 10,
            "num_minibatches": 32,
            "gae_lambda": 0.95,
            "kl_coef": 0.0,
            "kl_target": None,
        },
        "a2c": {},
        "reinforce": {},
    },
}
# The standard deviation the learned reward is normalised to (Christiano et al. 2017,
# §2.2.1: "zero mean and constant standard deviation"), when the project sets no
# reward_scale. Discrete: 1, what the CartPole tests were tuned on. Continuous: 0.3, from
# benchmarks/feedback_efficiency.py on Pendulum-v1 at 100 labels (seeds 0, 1: mean true
# return −328 at 1, −199 at 0.1, −167 at 0.3); at γ = 0.99 a unit scale makes the value
# loss dominate PPO's clipped gradient.
REWARD_SCALE_DEFAULTS = {"discrete": 1.0, "continuous": 0.3}
MIN_PAIRS_TO_FIT = 4
REWARD_EPOCHS = 40
DISAGREEMENT_OVERSAMPLE = 4


def _load_reward_ensemble(project: Project, *, device: torch.device):
    """(the newest RewardModel row, its ensemble on ``device``), or (None, None)."""
    row = artifacts.latest(RewardModel, project)
    if row is None:
        return None, None
    with artifacts.local_copy(row.checkpoint) as path:
        return row, checkpoints.load_reward_ensemble(path, device=device)


def _load_policy(project: Project, config: TrajectoryConfig, *, seed: int, device: torch.device):
    """(the newest Policy row or None, the policy on ``device``, its optimiser's
    TrainingState): a fresh policy and an empty state before any round."""
    row = artifacts.latest(Policy, project)
    if row is None:
        return None, policy_for_env(config.env_id, seed=seed).to(device), TrainingState()
    with artifacts.local_copy(row.checkpoint) as path:
        policy = checkpoints.load_policy(path, device=device)
        return row, policy, checkpoints.load_training_state(path)


def _store_checkpoint(project: Project, kind: str, obj, training_state=None) -> str:
    return artifacts.store_written_file(
        project,
        kind,
        ".pt",
        lambda path: checkpoints.save_checkpoint(obj, path, training_state=training_state),
    )


def _family(policy: ActorCritic) -> str:
    return "discrete" if policy.config.action_spec.discrete else "continuous"


def reward_scale(config: TrajectoryConfig, policy: ActorCritic) -> float:
    """The learned reward's standard deviation as the policy sees it: the project's
    reward_scale, else its action-space family's default."""
    if config.reward_scale is not None:
        return config.reward_scale
    return REWARD_SCALE_DEFAULTS[_family(policy)]


def optimizer_config(config: TrajectoryConfig, policy: ActorCritic):
    """The optimiser's hyperparameters: the family's defaults, the project's overrides,
    and the project's discount γ."""
    family = _family(policy)
    overrides = getattr(config, config.algorithm)
    return OPTIMIZER_CONFIGS[config.algorithm](
        **{**OPTIMIZER_DEFAULTS[family][config.algorithm], **overrides, "gamma": config.gamma}
    )


def evaluation_metrics(
    config: TrajectoryConfig, policy: ActorCritic, *, seed: int, device: torch.device
) -> dict:
    """The policy's (on ``device``) true return over ``eval_episodes`` deterministic
    episodes, with its standard error."""
    returns = episode_returns(
        env_id=config.env_id,
        policy=policy,
        episodes=config.eval_episodes,
        seed=seed,
        device=device,
    )
    se = float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0
    return {"charts/true_return": float(returns.mean()), "charts/true_return_se": se}


def _candidates(
    project: Project, config: TrajectoryConfig, *, newest, n: int, seed: int, device, progress
):
    """``n`` candidate segments, in equal shares from the newest ``recent_policies``
    policies (the newest first, on ``device``), shuffled; and the policy version of each.
    progress(f) as they are collected."""
    parent, policy = newest
    policies = [(parent.version if parent else 0, policy)]
    if parent is not None and config.recent_policies > 1:
        older = Policy.objects.filter(project=project, version__lt=parent.version)
        for row in older.order_by("-version")[: config.recent_policies - 1]:
            with artifacts.local_copy(row.checkpoint) as path:
                policies.append((row.version, checkpoints.load_policy(path, device=device)))
    candidates, versions = [], []
    for k, ((version, acting), share) in enumerate(
        zip(policies, np.array_split(np.arange(n), len(policies)), strict=True)
    ):
        found = replay.collect_replayable_segments(
            env_id=config.env_id,
            policy=acting,
            n_segments=len(share),
            segment_length=config.segment_length,
            seed=seed + 100_003 * k,
            device=device,
            progress=lambda f, k=k: progress((k + f) / len(policies)),
        )
        candidates += found
        versions += [version] * len(found)
    if len(policies) > 1:  # mix the policies' segments before pairing them
        order = np.random.default_rng(seed).permutation(len(candidates))
        candidates, versions = [candidates[i] for i in order], [versions[i] for i in order]
    return candidates, versions


class TrajectoryKind:
    name = "trajectory"
    config_type = TrajectoryConfig

    def fit_reward_model(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        device = step_device(config)
        judged = artifacts.judged_segments(project)
        pairs = [(a, b, p) for a, b, p, _ in judged]
        counts = {"reward/n_pairs": len(pairs), "feedback/both_bad": both_bad_count(project)}
        if len(pairs) < MIN_PAIRS_TO_FIT:
            return StepResult({**counts, "reward/skipped": 1})
        ensemble = reward_ensemble_for_env(
            config.env_id, n_members=config.ensemble_size, seed=context.seed
        )
        fit = fit_reward_ensemble(
            ensemble=ensemble,
            pairs=pairs,
            epochs=REWARD_EPOCHS,
            seed=context.seed,
            annotators=[pair.annotator_id for _, _, _, pair in judged],
            reliability=reliability_settings(config),
            # Llama 2's margin m(strength) per pair (config.strength_margins)
            margins=[strength_margin(config, pair.strength, p) for _, _, p, pair in judged],
            device=device,
            progress=lambda f: context.progress(0.95 * f),
        )
        metrics = reward_fit_metrics(counts, train=fit)
        metrics |= reliability_metrics(fit.reliability)
        name = _store_checkpoint(project, "reward", ensemble)

        return new_version(RewardModel, context, checkpoint=name, metrics=metrics)

    def improve_policy(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        device = step_device(config)
        reward_row, ensemble = _load_reward_ensemble(project, device=device)
        if ensemble is None:
            return StepResult({"policy/skipped": 1})
        _, policy, state = _load_policy(project, config, seed=context.seed, device=device)
        scale = reward_scale(config, policy)
        train_metrics = OPTIMIZERS[config.algorithm](
            env_id=config.env_id,
            policy=policy,
            reward_fn=NormalizedReward(ensemble, scale=scale),
            total_steps=config.env_steps_per_round,
            config=optimizer_config(config, policy),
            state=state,  # training continues across rounds
            seed=context.seed,
            device=device,
            progress=lambda f: context.progress(0.9 * f),
        )
        evaluation = evaluation_metrics(config, policy, seed=10_000 + context.seed, device=device)
        context.progress(0.97)
        metrics = {
            **finite_metrics(train_metrics),
            **evaluation,
            "policy/reward_model_version": reward_row.version,
            "policy/reward_scale": scale,
        }
        name = _store_checkpoint(project, "policy", policy, training_state=state)

        return new_version(Policy, context, checkpoint=name, metrics=metrics)

    def generate_comparisons(self, context: StepContext) -> StepResult:
        project, config, seed = context.project, context.config, context.seed
        n_pairs = config.comparisons_in_batch(comparison_batches_made(project) + 1)
        if n_pairs == 0:  # the label schedule's budget is spent
            return StepResult({"comparisons/created": 0})
        device = worker_device()  # the render queue's worker (training/devices.py)
        parent, policy, _ = _load_policy(project, config, seed=seed, device=device)
        _, ensemble = _load_reward_ensemble(project, device=device)
        strategy = config.selection if ensemble is not None else "random"
        oversample = DISAGREEMENT_OVERSAMPLE if strategy == "disagreement" else 1
        candidates, versions = _candidates(
            project,
            config,
            newest=(parent, policy),
            n=2 * n_pairs * oversample,
            seed=seed,
            device=device,
            progress=lambda f: context.progress(0.1 * f),
        )
        segments = [c.segment for c in candidates]
        if strategy == "disagreement":
            pairs = selection.disagreement_pairs(
                ensemble=ensemble,
                segments=segments,
                n_pairs=n_pairs,
                oversample=oversample,
                rng=np.random.default_rng(seed),
            )
        else:
            pairs = [(2 * i, 2 * i + 1) for i in range(n_pairs)]  # candidates are i.i.d.
        context.progress(0.1)
        chosen = sorted({i for pair in pairs for i in pair})
        items = []
        for n, index in enumerate(chosen):
            candidate = candidates[index]
            files = artifacts.store_segment(
                project,
                candidate.segment,
                frames=(
                    (lambda c=candidate: replay.render_segment(env_id=config.env_id, replayable=c))
                    if config.render_clips
                    else None
                ),
                fps=config.fps,
            )
            data = {
                "true_return": candidate.segment.true_return,
                "policy_version": versions[index],
                "episode_seed": candidate.episode_seed,
                "start": candidate.start,
            }
            items.append(NewItem(data=data, files=files))
            context.progress(0.1 + 0.85 * (n + 1) / len(chosen))
        initial = None if parent else _store_checkpoint(project, "policy", policy)
        position = {index: n for n, index in enumerate(chosen)}

        metrics = {
            "comparisons/created": len(pairs),
            "comparisons/selection": {"random": 0, "disagreement": 1}[strategy],
            "comparisons/mean_true_return": float(
                np.mean([segments[i].true_return for i in chosen])
            ),
        }
        return artifacts.new_comparisons(
            context,
            metrics,
            items=items,
            comparisons=[((position[a], position[b]), {}) for a, b in pairs],
            initial_policy=initial,
        )

    def judgeable(self, item: Item) -> Segment:
        """The item's segment, with its true rewards."""
        return artifacts.load_segment(item)


KIND = TrajectoryKind()
