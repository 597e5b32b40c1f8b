"""The tabular loop. A trajectory project whose ``algorithm`` is tabular (value_iteration,
policy_iteration, mc_control, sarsa, q_learning) runs on an env with Discrete observations
and actions, in practice gymnasium's toy-text envs (FrozenLake, CliffWalking, Taxi), whose model
``env.unwrapped.P`` also lets us measure the learned reward exactly.

Items are segments of (state, action) rows (training.ml.tabular.segments), stored as the
other trajectory items are (artifacts.save_segment, the states as observations) with clips
from the env's ``rgb_array`` mode. Checkpoints are .npy tables in Django's storage: a
RewardModel's is r̂(s, a) (S, A), a Policy's is π(a|s) (S, A).

- fit_reward_model: r̂ by the Bradley-Terry loss on every judged pair, r̂ = 0 on terminal
  states (training.ml.tabular.reward). A second fit that holds out 20% of the pairs measures
  ``reward/heldout_*``; the stored table is fitted on all of them.
- improve_policy: ``algorithm`` against r̂, with discount ``gamma``: value or policy iteration
  on the env's model with r̂ for its reward, or MC control / SARSA / Q-learning on the env
  itself with r̂ instead of the env's reward, for ``env_steps_per_round`` episodes (the
  model-free methods' unit is the episode, each capped by the env's time limit). ``regret``
  is v*(start) − v^π̂(start) on the TRUE reward for π̂ optimal for r̂ (exact, by dynamic
  programming on the model); ``policy/regret`` the same for the policy the algorithm found.
- generate_comparisons: segments of the current policy mixed with ε = 0.3 random actions;
  before any policy exists every segment starts in a random reachable state (exploring
  starts), afterwards half of them do, so the comparisons cover the whole state space. Pairs
  are chosen by ``selection``: ``random``; ``disagreement``, the most uncertain pairs under
  the Laplace posterior of the BT fit (training.ml.tabular.selection says why not a bootstrap
  ensemble of tables); or ``ucb``, UCB over quantile bins of that uncertainty
  (training.ml.tabular.bandits.UCBPairSelector), whose arm reward is the surprise of a
  judged pair, its BT loss under the reward model that chose it. The selector's state lives in the
  ``selection/ucb_state`` metric of the generate_comparisons step that used it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from labeling.models import Comparison, Item, Judgement, Project
from labeling.preferences import both_bad_count
from training import artifacts
from training.artifacts import NewItem
from training.kinds.config import TrajectoryConfig, strength_margin
from training.kinds.reliability import reliability_metrics, reliability_settings
from training.ml.control.rollouts import Segment
from training.ml.control.selection import random_pairs
from training.ml.reliability import (
    Fit,
    FlipRates,
    ReliabilityConfig,
    fit_with_reliability,
    flip_posterior,
    soft_targets,
)
from training.ml.tabular.bandits import UCBPairSelector
from training.ml.tabular.dynamic_programming import deterministic_policy
from training.ml.tabular.optimizers import (
    evaluate_tabular_policy,
    optimise_tabular_policy,
    start_value,
    tabular_env,
)
from training.ml.tabular.reward import (
    TabularRewardConfig,
    TabularRewardFit,
    fit_tabular_reward_model,
    optimal_policy_regret,
)
from training.ml.tabular.segments import (
    TabularSegment,
    behaviour_policy,
    collect_tabular_segments,
    render_tabular_segment,
)
from training.ml.tabular.selection import (
    preference_surprise,
    preference_uncertainty,
    state_action_counts,
)
from training.models import Policy, RewardModel, Run
from training.selectors import comparison_batches_made
from training.steps import StepContext, StepResult, finite_metrics, new_version, reward_fit_metrics

MIN_PAIRS_TO_FIT = 4
REWARD_FIT = TabularRewardConfig()  # heldout_fraction 0.2 for the metrics fit
EXPLORATION_EPSILON = 0.3  # share of random actions in the segments' behaviour policy
EXPLORING_STARTS_WITHOUT_POLICY = 1.0
EXPLORING_STARTS_WITH_POLICY = 0.5
CANDIDATE_OVERSAMPLE = 4  # disagreement and ucb choose among 4 × n_pairs candidate pairs
EVAL_EPISODES = 50
SELECTION_CODES = {"random": 0, "disagreement": 1, "ucb": 2}
UCB_STATE = "selection/ucb_state"


def state_actions(segment: Segment) -> np.ndarray:
    """(k, 2) int rows (s_t, a_t) of a stored segment (its observations are its states)."""
    return np.stack(
        [np.asarray(segment.observations, dtype=np.int64), np.asarray(segment.actions)], axis=1
    ).astype(np.int64)


def _latest_table(model, project: Project):
    """(the newest row of ``model``, its table), or (None, None)."""
    row = artifacts.latest(model, project)
    return (row, artifacts.load_table(row)) if row is not None else (None, None)


def _judged_arrays(
    project: Project, config: TrajectoryConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], int, np.ndarray]:
    """Every judged pair of segments of config.segment_length steps as (segments_a,
    segments_b, p_a) of shapes (N, k, 2), (N, k, 2), (N,), with the annotator of each; how
    many pairs of another length were left out (a project whose segment_length changed);
    and each pair's strength margin (config.strength_margins), signed towards a, (N,)."""
    length = config.segment_length
    pairs = artifacts.judged_segments(project)
    kept = [(a, b, p, pair) for a, b, p, pair in pairs if len(a) == len(b) == length]
    if not kept:
        empty = np.zeros((0, length, 2), dtype=np.int64)
        return empty, empty, np.zeros(0), [], len(pairs), np.zeros(0)
    segments_a = np.stack([state_actions(a) for a, _, _, _ in kept])
    segments_b = np.stack([state_actions(b) for _, b, _, _ in kept])
    p_a = np.array([p for _, _, p, _ in kept])
    annotators = [pair.annotator_id for _, _, _, pair in kept]
    margins = np.array(  # (2p − 1)·m: towards the judged winner (bradley_terry.signed_margins)
        [(2 * p - 1) * strength_margin(config, pair.strength, p) for _, _, p, pair in kept]
    )
    return segments_a, segments_b, p_a, annotators, len(pairs) - len(kept), margins


def _reliability_fit(
    pairs: dict, annotators: list[int], settings: ReliabilityConfig
) -> tuple[TabularRewardFit, np.ndarray, FlipRates]:
    """The annotators' flip rates by EM (training/ml/reliability.py) on the training pairs
    of the metrics fit's split, each label judged by a table fitted on the other half of
    them (cross-fitting: a table judging its own labels finds no flips). Returns the
    metrics fit (soft targets on its training pairs, the held-out labels as judged), the
    soft targets of every pair (a held-out pair's judged by that fit) and the estimates."""
    p_a, seed = pairs["p_a"], pairs["seed"]
    # The split fit_tabular_reward_model draws with this seed and fraction.
    held = np.random.default_rng(seed).permutation(len(p_a))
    held = held[: round(REWARD_FIT.heldout_fraction * len(p_a))]
    train = np.setdiff1d(np.arange(len(p_a)), held)
    folds = np.random.default_rng(seed + 1).permutation(len(train)) % 2
    tables = dataclasses.replace(REWARD_FIT, heldout_fraction=0.0)

    def margins_of(fit: TabularRewardFit, index: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            a, b = (torch.as_tensor(pairs[k][index]) for k in ("segments_a", "segments_b"))
            return fit.model(a) - fit.model(b)

    def fit(targets: torch.Tensor, iteration: int) -> Fit:
        margins = torch.zeros(len(train), dtype=torch.float64)
        for fold in (0, 1):
            others = train[folds != fold]
            subset = {k: pairs[k][others] for k in ("segments_a", "segments_b", "margins")}
            table = fit_tabular_reward_model(
                **{**pairs, **subset, "p_a": targets[folds != fold].numpy()}, config=tables
            )
            margins[torch.as_tensor(folds == fold)] = margins_of(table, train[folds == fold])
        return Fit(margins)

    estimate = fit_with_reliability(
        fit=fit, p_a=p_a[train], annotators=[annotators[i] for i in train], config=settings
    )
    targets = p_a.copy()
    targets[train] = estimate.targets.numpy()
    measured = fit_tabular_reward_model(**{**pairs, "p_a": targets}, config=REWARD_FIT)
    prior = settings.alpha / (settings.alpha + settings.beta)
    eps = torch.tensor([estimate.flip_rates.get(annotators[i], prior) for i in held])
    p_held = torch.as_tensor(p_a[held])
    q = flip_posterior(margins_of(measured, held), p_held, eps)
    targets[held] = soft_targets(p_held, q).numpy()
    return measured, targets, estimate


def _stored_segment(project: Project, config: TrajectoryConfig, segment: TabularSegment):
    """The item's files: the segment with its states as observations, and its clip."""
    stored = Segment(
        observations=segment.states,
        actions=segment.actions,
        true_rewards=segment.true_rewards.astype(np.float32),
    )
    render = lambda: render_tabular_segment(env_id=config.env_id, segment=segment)  # noqa: E731
    return artifacts.store_segment(
        project, stored, frames=render if config.render_clips else None, fps=config.fps
    )


def _updated_ucb_selector(project: Project, *, length: int) -> tuple[UCBPairSelector, dict]:
    """The UCB selector of the last round that used one, updated with the surprise of the
    pairs it chose that have been judged since (a pair only skipped earns 0; pairs nobody
    judged are forgotten), and metrics of that update. A fresh selector when none exists."""
    previous = (
        Run.objects.filter(
            project=project,
            kind=Run.Kind.GENERATE_COMPARISONS,
            status=Run.Status.SUCCEEDED,
            metrics__has_key=UCB_STATE,
        )
        .order_by("-number")
        .first()
    )
    if previous is None:
        return UCBPairSelector(), {}
    state = previous.metrics[UCB_STATE]
    selector = UCBPairSelector.from_state(state)
    chooser = RewardModel.objects.filter(
        project=project, version=state["reward_model_version"]
    ).first()
    if chooser is None:
        return selector, {}
    chooser_reward = artifacts.load_table(chooser)
    candidate_of = dict(
        Comparison.objects.filter(
            project=project, data__round=previous.number, data__has_key="ucb_candidate"
        ).values_list("pk", "data__ucb_candidate")
    )
    comparison_of = dict(
        Judgement.objects.filter(comparison_id__in=candidate_of).values_list("pk", "comparison_id")
    )
    losses: dict[int, list[float]] = {pk: [] for pk in sorted(set(comparison_of.values()))}
    for a, b, p_a, pair in artifacts.judged_segments(project, comparison_ids=list(candidate_of)):
        if len(a) == len(b) == length:
            surprise = preference_surprise(
                reward=chooser_reward,
                segments_a=state_actions(a)[None],
                segments_b=state_actions(b)[None],
                p_a=np.array([p_a]),
            )[0]
            losses[comparison_of[pair.judgement_id]].append(float(surprise))
    if not losses:
        return selector, {}
    indices = np.array([int(candidate_of[pk]) for pk in losses])
    surprises = np.array([float(np.mean(found)) if found else 0.0 for found in losses.values()])
    selector.update(indices, surprises)
    return selector, {
        "selection/ucb_updates": len(indices),
        "selection/ucb_mean_surprise": float(np.mean(surprises)),
    }


class TabularKind:
    name = "tabular"
    config_type = TrajectoryConfig

    def fit_reward_model(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        env = tabular_env(config.env_id)
        judged = _judged_arrays(project, config)
        segments_a, segments_b, p_a, annotators, other_length, margins = judged
        both_bad = both_bad_count(project)  # counted, never a preference
        if len(p_a) < MIN_PAIRS_TO_FIT:
            return StepResult(
                {"reward/n_pairs": len(p_a), "feedback/both_bad": both_bad, "reward/skipped": 1}
            )
        terminal = env.mdp.terminal if env.mdp is not None else None
        pairs = {
            "segments_a": segments_a,
            "segments_b": segments_b,
            "p_a": p_a,
            "n_states": env.n_states,
            "n_actions": env.n_actions,
            "terminal": terminal,
            "seed": context.seed,
            "margins": margins,  # Llama 2's m(strength), signed towards a
        }
        estimate = None
        if (settings := reliability_settings(config)) is not None:
            # the stored table fits the soft targets
            measured, pairs["p_a"], estimate = _reliability_fit(pairs, annotators, settings)
        else:
            measured = fit_tabular_reward_model(**pairs, config=REWARD_FIT)
        context.progress(0.5)
        fit = fit_tabular_reward_model(
            **pairs, config=dataclasses.replace(REWARD_FIT, heldout_fraction=0.0)
        )
        context.progress(0.95)
        visited = (
            state_action_counts(
                segments=np.concatenate([segments_a, segments_b]),
                n_states=env.n_states,
                n_actions=env.n_actions,
            ).sum(axis=0)
            > 0
        ).reshape(env.n_states, env.n_actions)
        running = ~terminal if terminal is not None else np.ones(env.n_states, dtype=bool)
        counts = {
            "reward/n_pairs": len(p_a),
            "reward/coverage": float(visited[running].mean()),  # (s, a) seen in a judged pair
            "feedback/both_bad": both_bad,
        }
        metrics = finite_metrics(reward_fit_metrics(counts, train=fit, heldout=measured))
        metrics |= reliability_metrics(estimate)
        if other_length:  # judged before segment_length changed: not used
            metrics["reward/n_pairs_other_length"] = other_length
        name = artifacts.store_table(project, "reward", fit.reward)

        return new_version(RewardModel, context, checkpoint=name, metrics=metrics)

    def improve_policy(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        reward_row, reward = _latest_table(RewardModel, project)
        if reward is None:
            return StepResult({"policy/skipped": 1})
        env = tabular_env(config.env_id)
        seed, gamma = context.seed, config.gamma
        actions, metrics = optimise_tabular_policy(
            env=env,
            algorithm=config.algorithm,
            reward=reward,
            gamma=gamma,
            episodes=config.env_steps_per_round,
            seed=seed,
        )
        context.progress(0.8)
        policy = deterministic_policy(actions=actions, n_actions=env.n_actions)  # π(a|s) (S, A)
        if env.mdp is not None:
            learned_optimum = optimal_policy_regret(mdp=env.mdp, learned_reward=reward, gamma=gamma)
            metrics["regret"] = learned_optimum.regret
            metrics["policy/regret"] = learned_optimum.optimal_value - start_value(
                mdp=env.mdp, actions=actions, gamma=gamma
            )
        true_return, learned_reward = evaluate_tabular_policy(
            env_id=config.env_id,
            policy=policy,
            reward=reward,
            episodes=EVAL_EPISODES,
            seed=10_000 + seed,
        )
        metrics["charts/true_return"] = true_return
        metrics["charts/mean_learned_reward"] = learned_reward
        metrics["policy/reward_model_version"] = reward_row.version
        metrics = finite_metrics(metrics)
        name = artifacts.store_table(project, "policy", policy)

        return new_version(Policy, context, checkpoint=name, metrics=metrics)

    def generate_comparisons(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        env = tabular_env(config.env_id)
        seed = context.seed
        rng = np.random.default_rng(seed)
        n_pairs = config.comparisons_in_batch(comparison_batches_made(project) + 1)
        if n_pairs == 0:  # the label schedule's budget is spent
            return StepResult({"comparisons/created": 0})
        parent, policy = _latest_table(Policy, project)
        reward_row, reward = _latest_table(RewardModel, project)
        strategy = config.selection if reward is not None else "random"
        oversample = 1 if strategy == "random" else CANDIDATE_OVERSAMPLE
        learned = parent is not None and parent.version > 0  # version 0 is the random policy
        segments = collect_tabular_segments(
            env_id=config.env_id,
            policy=behaviour_policy(policy=policy, epsilon=EXPLORATION_EPSILON)
            if learned
            else None,
            n_segments=2 * n_pairs * oversample,
            segment_length=config.segment_length,
            seed=seed,
            exploring_start_fraction=(
                EXPLORING_STARTS_WITH_POLICY if learned else EXPLORING_STARTS_WITHOUT_POLICY
            ),
        )
        metrics: dict = {}
        pair_data: list[dict] = [{} for _ in range(n_pairs)]
        if strategy == "random":
            pairs = [(2 * i, 2 * i + 1) for i in range(n_pairs)]  # segments are i.i.d.
        else:
            candidates = random_pairs(len(segments), oversample * n_pairs, rng)
            table = np.stack([s.state_actions for s in segments])  # (M, k, 2)
            judged_a, judged_b, *_ = _judged_arrays(project, config)
            uncertainty = preference_uncertainty(
                reward=reward,
                judged_a=judged_a,
                judged_b=judged_b,
                candidates_a=table[[a for a, _ in candidates]],
                candidates_b=table[[b for _, b in candidates]],
                weight_decay=REWARD_FIT.weight_decay,
                terminal=env.mdp.terminal if env.mdp is not None else None,
            )
            if strategy == "disagreement":
                chosen = np.argsort(-uncertainty, kind="stable")[:n_pairs]  # most uncertain first
            else:
                selector, metrics = _updated_ucb_selector(project, length=config.segment_length)
                chosen = selector.select(uncertainty, n_pairs, rng)
                metrics[UCB_STATE] = {
                    **selector.to_state(),
                    "reward_model_version": reward_row.version,
                }
                pair_data = [{"ucb_candidate": int(i)} for i in chosen]
            pairs = [candidates[i] for i in chosen]
            metrics["comparisons/mean_uncertainty"] = float(uncertainty[chosen].mean())
        context.progress(0.1)

        indices = sorted({i for pair in pairs for i in pair})
        policy_version = parent.version if parent else 0
        items = []
        for n, index in enumerate(indices):
            segment = segments[index]
            data = {
                "true_return": segment.true_return,
                "policy_version": policy_version,
                "episode_seed": segment.episode_seed,
                "start_state": segment.start_state,
            }
            items.append(NewItem(data=data, files=_stored_segment(project, config, segment)))
            context.progress(0.1 + 0.85 * (n + 1) / len(indices))
        initial = None
        if parent is None:  # version 0: the uniformly random policy that made these segments
            initial = artifacts.store_table(
                project, "policy", np.full((env.n_states, env.n_actions), 1.0 / env.n_actions)
            )
        position = {index: n for n, index in enumerate(indices)}

        shown = [segments[i] for i in indices]
        running = ~env.mdp.terminal if env.mdp is not None else np.ones(env.n_states, dtype=bool)
        seen = np.zeros(env.n_states, dtype=bool)
        seen[np.concatenate([s.states for s in shown])] = True
        metrics.update(
            {
                "comparisons/created": len(pairs),
                "comparisons/selection": SELECTION_CODES[strategy],
                "comparisons/mean_true_return": float(np.mean([s.true_return for s in shown])),
                "comparisons/state_coverage": float(seen[running].mean()),
            }
        )
        return artifacts.new_comparisons(
            context,
            metrics,
            items=items,
            comparisons=[
                ((position[a], position[b]), data)
                for (a, b), data in zip(pairs, pair_data, strict=True)
            ],
            initial_policy=initial,
        )

    def judgeable(self, item: Item) -> Segment:
        """The item's segment, with its true rewards."""
        return artifacts.load_segment(item)


KIND = TabularKind()
