"""The language-model loop (InstructGPT and DPO).

Policies and reward models are Hugging Face model directories (``save_pretrained``),
stored zipped. DPO trains on the judged pairs directly and skips the reward model; PPO and
REINFORCE fit r_θ(x, y) first and optimise r_θ − β·KL(π‖π_ref), π_ref being the policy
the round started from.
"""

from __future__ import annotations

from itertools import groupby

import numpy as np

from core.errors import InvalidInput
from labeling.models import Item, Project
from labeling.selectors import Preference, preferences
from training import artifacts
from training.artifacts import NewItem
from training.kinds.config import TextConfig
from training.ml.lm import lm
from training.ml.lm.dpo import train_dpo
from training.ml.lm.lm_policy_gradient import train_lm_policy_gradient
from training.ml.lm.lm_reward import (
    ComparisonGroup,
    LMRewardModel,
    fit_lm_reward_model,
    load_lm_reward_model,
    save_lm_reward_model,
)
from training.ml.lm.text_teacher import lexicon_score, load_lexicon, text_judgeable
from training.models import Policy, RewardModel
from training.steps import StepContext, StepResult, finite_metrics, new_version, reward_fit_metrics

MIN_JUDGEMENTS_TO_FIT = 4
REWARD_EPOCHS = 3
DPO_EPOCHS = 2
PG_ITERATIONS = 8
DEFAULT_TEACHER_PROMPT = "Question: How was your day?\nAnswer:"


def prompts_of(project: Project, config: TextConfig) -> list[str]:
    """config.prompts, or else the prompts of the project's imported items."""
    if config.prompts:
        return list(config.prompts)
    imported = (
        Item.objects.filter(project=project).exclude(prompt="").values_list("prompt", flat=True)
    )
    prompts = list(dict.fromkeys(imported))
    if not prompts:
        raise InvalidInput(
            f"Project {project.slug!r} has no prompts: set config.prompts or import some."
        )
    return prompts


def _texts(project: Project, pairs: list[Preference]) -> dict[int, Item]:
    ids = {pk for pair in pairs for pk in (pair.a_id, pair.b_id)}
    return {i.pk: i for i in Item.objects.filter(pk__in=ids).only("pk", "prompt", "text")}


def comparison_groups(project: Project) -> list[ComparisonGroup]:
    """For the reward model: one group per judgement, its pairs kept together (a ranking's
    C(K, 2) pairs are one batch element, as in InstructGPT; a tie is one pair with p = ½)."""
    pairs = preferences(project)
    items = _texts(project, pairs)
    groups = []
    for _, judged in groupby(pairs, key=lambda pair: pair.judgement_id):
        judged = list(judged)
        ids = list(dict.fromkeys(pk for pair in judged for pk in (pair.a_id, pair.b_id)))
        groups.append(
            ComparisonGroup(
                prompt=items[ids[0]].prompt,
                responses=tuple(items[pk].text for pk in ids),
                pairs=tuple((ids.index(pair.a_id), ids.index(pair.b_id)) for pair in judged),
                p_first=tuple(pair.p for pair in judged),
            )
        )
    return groups


def dpo_pairs(project: Project) -> list[tuple[str, str, str]]:
    """For DPO: (prompt, chosen, rejected) of every ranked pair; ties give none."""
    pairs = preferences(project, ties=False)
    items = _texts(project, pairs)
    return [(items[p.a_id].prompt, items[p.a_id].text, items[p.b_id].text) for p in pairs]


def _load_policy(project: Project, config: TextConfig):
    """(the newest Policy row or None, model, tokenizer): the base model before any round."""
    row = artifacts.latest(Policy, project)
    if row is None:
        model, tokenizer = lm.load_causal_lm(config.model_dir)
        return None, model, tokenizer
    with artifacts.local_directory(row.checkpoint) as path:
        model, tokenizer = lm.load_policy(path)
    return row, model, tokenizer


def _store_policy(project: Project, model, tokenizer) -> str:
    return artifacts.store_directory(
        project, "policy", lambda directory: lm.save_policy(model, tokenizer, directory)
    )


def _teacher_score(model, tokenizer, config: TextConfig, seed: int) -> dict[str, float]:
    """The synthetic teacher's mean score of fresh samples: how the policy does on the
    rule the simulated annotators judge by (a figure for the dashboard)."""
    samples = lm.sample_responses(
        model=model,
        tokenizer=tokenizer,
        prompts=config.prompts[:8] or [DEFAULT_TEACHER_PROMPT],
        k=2,
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        seed=seed + 7,
    )
    lexicon = load_lexicon()
    scores = [lexicon_score(text, lexicon) for group in samples for text in group]
    return {"teacher/mean_score": float(np.mean(scores))}


class TextKind:
    name = "text"
    config_type = TextConfig

    def fit_reward_model(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        if config.algorithm == "dpo":
            return StepResult({"reward/skipped": 1})  # DPO learns from the pairs directly
        groups = comparison_groups(project)
        if len(groups) < MIN_JUDGEMENTS_TO_FIT:
            return StepResult({"reward/n_judgements": len(groups), "reward/skipped": 1})
        _, base, tokenizer = _load_policy(project, config)
        model = LMRewardModel.from_causal_lm(base, tokenizer, seed=context.seed)
        fit = fit_lm_reward_model(
            model=model,
            rankings=groups,
            epochs=REWARD_EPOCHS,
            seed=context.seed,
            progress=lambda f: context.progress(0.9 * f),
        )
        metrics = reward_fit_metrics({"reward/n_judgements": len(groups)}, train=fit)
        name = artifacts.store_directory(
            project, "reward", lambda directory: save_lm_reward_model(model, directory)
        )

        return new_version(RewardModel, context, checkpoint=name, metrics=metrics)

    def improve_policy(self, context: StepContext) -> StepResult:
        project, config, seed = context.project, context.config, context.seed
        _, policy, tokenizer = _load_policy(project, config)
        if config.algorithm == "dpo":
            pairs = dpo_pairs(project)
            if not pairs:
                return StepResult({"policy/skipped": 1})
            # DPO, Rafailov et al. 2023; the reference is the policy this round started from.
            train_metrics = train_dpo(
                policy=policy,
                tokenizer=tokenizer,
                pairs=pairs,
                beta=config.beta,
                epochs=DPO_EPOCHS,
                seed=seed,
                progress=lambda f: context.progress(0.8 * f),
            )
        else:
            reward_row = artifacts.latest(RewardModel, project)
            if reward_row is None:
                return StepResult({"policy/skipped": 1})
            with artifacts.local_directory(reward_row.checkpoint) as path:
                reward_model = load_lm_reward_model(path)
            train_metrics = train_lm_policy_gradient(
                algorithm=config.algorithm,
                policy=policy,
                reference=lm.frozen_copy(policy),
                tokenizer=tokenizer,
                reward_fn=reward_model.score,
                prompts=prompts_of(project, config),
                k=config.k,
                beta=config.beta,
                temperature=config.temperature,
                top_p=config.top_p,
                max_new_tokens=config.max_new_tokens,
                iterations=PG_ITERATIONS,
                seed=seed,
                progress=lambda f: context.progress(0.8 * f),
            )
        metrics = {
            **finite_metrics(train_metrics),
            **_teacher_score(policy, tokenizer, config, seed),
        }
        name = _store_policy(project, policy, tokenizer)

        return new_version(Policy, context, checkpoint=name, metrics=metrics)

    def generate_comparisons(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        parent, policy, tokenizer = _load_policy(project, config)
        all_prompts = prompts_of(project, config)
        n = config.comparisons_per_round
        start = (context.step.number - 1) * n
        prompts = [all_prompts[(start + i) % len(all_prompts)] for i in range(n)]
        samples = lm.sample_responses(
            model=policy,
            tokenizer=tokenizer,
            prompts=prompts,
            k=config.k,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
            seed=context.seed,
            progress=lambda f: context.progress(0.8 * f),
        )
        initial = None if parent else _store_policy(project, policy, tokenizer)
        data = {"policy_version": parent.version if parent else 0}
        items, comparisons = [], []
        for prompt, responses in zip(prompts, samples, strict=True):
            first = len(items)
            items.extend(NewItem(data=data, prompt=prompt, text=text) for text in responses)
            comparisons.append((range(first, len(items)), {}))
        return artifacts.new_comparisons(
            context,
            {"comparisons/created": len(prompts)},
            items=items,
            comparisons=comparisons,
            initial_policy=initial,
        )

    def judgeable(self, item: Item):
        """The response, scored by the sentiment lexicon."""
        return text_judgeable(item.text)


KIND = TextKind()
