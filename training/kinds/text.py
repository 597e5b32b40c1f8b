"""The language-model loop (InstructGPT, DPO and KTO).

Policies and reward models are Hugging Face model directories (``save_pretrained``),
stored zipped. DPO trains on the judged pairs directly and skips the reward model, and so
does KTO on each completion's verdict (training/kinds/text_kto.py); PPO and
REINFORCE fit r_θ(x, y) first and optimise r_θ − β·KL(π‖π_ref), π_ref being the policy
the round started from.

With config.lora each policy version stores only a LoRA adapter on config.model_dir
(training/ml/lm/lora.py), version 0 a fresh one; only the adapter trains, and π_ref is
the base with the adapter switched off, for DPO and the policy gradient alike.
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import torch

from core.errors import InvalidInput
from labeling.models import Item, Project
from labeling.preferences import Preference, both_bad_count, preferences
from training import artifacts
from training.devices import step_device, step_dtype, worker_device
from training.kinds import text_eval, text_kto, text_reward
from training.kinds.config import TextConfig, reliability_enabled
from training.kinds.reliability import ANNOTATORS_METRIC, reliability_metrics, reliability_settings
from training.kinds.text_items import Prompt, context_of, item_texts, sampled_item, shared_context
from training.ml.lm import lm, lora
from training.ml.lm.dpo import train_dpo
from training.ml.lm.dpo_processes import train_dpo_in_processes
from training.ml.lm.lm_policy_gradient import train_lm_policy_gradient
from training.ml.lm.lm_reward import LMRewardModel, load_lm_reward_model, save_lm_reward_model
from training.ml.lm.lm_reward_fit import fit_lm_reward_model
from training.ml.lm.text_teacher import text_judgeable
from training.ml.reliability import ReliabilityConfig, flip_posterior
from training.models import Policy, RewardModel
from training.steps import StepContext, StepResult, finite_metrics, new_version, reward_fit_metrics

MIN_JUDGEMENTS_TO_FIT = 4
REWARD_EPOCHS = 3
DPO_EPOCHS = 2
PG_ITERATIONS = 8
# Beside a reward model fitted with reliability: {"judgement:a:b": the out-of-sample
# posterior that the label is right} of the pairs it trained on, for DPO's weights.
LABEL_WEIGHTS_FILE = "label_weights.json"


def prompts_of(project: Project, config: TextConfig) -> list[Prompt]:
    """config.prompts, or else the prompts of the project's imported items: strings, and
    for a conversation the prompt's message list (text_items.context_of renders one)."""
    if config.prompts:
        return list(config.prompts)
    imported = (
        Item.objects.filter(project=project)
        .exclude(prompt="")
        .values_list("prompt", "prompt_messages")
    )
    distinct = {
        json.dumps(messages) if messages else prompt: messages or prompt
        for prompt, messages in imported
    }
    prompts = list(distinct.values())
    if not prompts:
        raise InvalidInput(
            f"Project {project.slug!r} has no prompts: set config.prompts or import some."
        )
    return prompts


def _texts(pairs: list[Preference], tokenizer) -> dict[int, tuple[str, str]]:
    """(context, response) of every item in ``pairs`` (text_items.item_texts)."""
    ids = {pk for pair in pairs for pk in (pair.a_id, pair.b_id)}
    items = Item.objects.filter(pk__in=ids).only(
        "pk", "prompt", "text", "prompt_messages", "messages"
    )
    return {item.pk: item_texts(item, tokenizer) for item in items}


def _pair_key(pair: Preference) -> str:
    return f"{pair.judgement_id}:{pair.a_id}:{pair.b_id}"


def dpo_pairs(project: Project, tokenizer) -> list[tuple[str, str, str]]:
    """For DPO: (prompt, chosen, rejected) of every ranked pair; ties give none. A
    conversation's prompt is its rendered context, chosen and rejected its final turns."""
    return [texts for texts, _ in judged_dpo_pairs(project, tokenizer)]


def _dpo_texts(chosen: tuple[str, str], rejected: tuple[str, str]) -> tuple[str, str, str]:
    context, (chosen_text, rejected_text) = shared_context([chosen, rejected])
    return context, chosen_text, rejected_text


def judged_dpo_pairs(project: Project, tokenizer) -> list[tuple[tuple[str, str, str], Preference]]:
    """dpo_pairs, each with the preference it comes from."""
    pairs = preferences(project, ties=False)
    items = _texts(pairs, tokenizer)
    return [(_dpo_texts(items[p.a_id], items[p.b_id]), p) for p in pairs]


def dpo_weights(
    project: Project,
    judged: list[tuple[tuple[str, str, str], Preference]],
    settings: ReliabilityConfig,
) -> tuple[list[float] | None, dict]:
    """Per DPO pair, the posterior that its label is right (reliability.py, eq. 2), from
    the newest reward model's fit: the E-step's own out-of-sample posterior for a pair the
    reward model trained on (LABEL_WEIGHTS_FILE; the reward model itself has memorised
    those labels), else its margin r(chosen) − r(rejected) judged with the annotator's
    estimated flip rate (the prior's for an annotator it has not seen). None, {} when no
    reward model has estimated flip rates yet."""
    row = artifacts.latest(RewardModel, project)
    if row is None or ANNOTATORS_METRIC not in row.metrics:
        return None, {}
    rates = {int(k): v["flip_rate"] for k, v in row.metrics[ANNOTATORS_METRIC].items()}
    prior = settings.alpha / (settings.alpha + settings.beta)
    with artifacts.local_directory(row.checkpoint) as path:
        stored_file = path / LABEL_WEIGHTS_FILE
        stored = json.loads(stored_file.read_text()) if stored_file.is_file() else {}
        weights = [stored.get(_pair_key(pair)) for _, pair in judged]
        unseen = [k for k, w in enumerate(weights) if w is None]
        if unseen:
            reward_model = load_lm_reward_model(path)
            prompts, chosen, rejected = zip(*(judged[k][0] for k in unseen), strict=True)
            margins = reward_model.score(prompts, chosen) - reward_model.score(prompts, rejected)
            eps = torch.tensor([rates.get(judged[k][1].annotator_id, prior) for k in unseen])
            q = flip_posterior(margins.double(), torch.ones(len(unseen), dtype=torch.float64), eps)
            for k, w in zip(unseen, (1.0 - q).tolist(), strict=True):
                weights[k] = w
    return weights, {
        "reliability/dpo_mean_weight": float(np.mean(weights)),
        "reliability/dpo_pairs_judged_now": len(unseen),
        "reliability/reward_model_version": row.version,
    }


def lora_spec(config: TextConfig) -> lora.LoraSpec | None:
    """config.lora as a LoraSpec (what it leaves out takes LoraSpec's defaults), or None
    when it is empty: full fine-tuning."""
    if not config.lora:
        return None
    given = dict(config.lora)
    if "target_modules" in given:
        given["target_modules"] = tuple(given["target_modules"])
    return lora.LoraSpec(**given)


def _load_policy(project: Project, config: TextConfig, *, train_seed: int | None = None):
    """(the newest Policy row or None, model, tokenizer): the base model before any round.

    A stored adapter (a LoRA version) comes on its base, config.model_dir, merged into it:
    a plain model to sample or score with. Given train_seed, the policy is loaded to train:
    with config.lora, its stored adapter trainable, or a fresh adapter drawn from train_seed
    on the base; without, a plain model (a stored adapter merged) trained in full."""
    row = artifacts.latest(Policy, project)
    spec = lora_spec(config) if train_seed is not None else None
    if row is None:
        model, tokenizer = lm.load_causal_lm(config.model_dir)
    else:
        with artifacts.local_directory(row.checkpoint) as path:
            adapter = lora.is_adapter_directory(path)
            if spec is not None and not adapter and row.version > 0:
                raise InvalidInput(
                    f"Project {project.slug!r} has config.lora, but its policy v{row.version} "
                    "was trained in full and LoRA adapts config.model_dir: remove config.lora, "
                    "or start a new project with it."
                )
            if spec is not None and not adapter:  # v0 stored whole: the base itself
                model, tokenizer = lm.load_causal_lm(config.model_dir)
            else:
                model, tokenizer = lora.load_policy(
                    path, base_dir=config.model_dir, trainable=spec is not None, merge=spec is None
                )
    if spec is not None and not lora.has_adapter(model):
        model = lora.add_adapter(model, spec, seed=train_seed)
    return row, model, tokenizer


def _as_initial_policy(model, config: TextConfig, seed: int):
    """What version 0 stores: the base, or with config.lora a fresh adapter on it (B = 0,
    so the base's behaviour, in a few kilobytes)."""
    spec = lora_spec(config)
    return model if spec is None else lora.add_adapter(model, spec, seed=seed)


def _store_policy(project: Project, model, tokenizer) -> str:
    return artifacts.store_directory(
        project, "policy", lambda directory: lm.save_policy(model, tokenizer, directory)
    )


class TextKind:
    name = "text"
    config_type = TextConfig

    def fit_reward_model(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        device = step_device(config)
        if config.algorithm == "kto" or (
            config.algorithm == "dpo" and not reliability_enabled(config)
        ):
            # DPO learns from the pairs directly; with reliability weighting a reward model
            # still estimates each annotator's flip rate, and DPO weighs its pairs by them.
            # KTO learns from each completion's verdict directly (training/kinds/text_kto.py).
            return StepResult({"reward/skipped": 1})
        # the policy's tokenizer is the base's (lm.save_policy, lora.load_policy)
        # one group per judgement: its choice's pairs with strength margins, and its
        # ratings' pairs per criterion (training/kinds/text_reward.py)
        judged = text_reward.judged_groups(project, lm.load_tokenizer(config.model_dir), config)
        groups = [group for group, _ in judged]
        counts = {
            "reward/n_judgements": len(groups),
            "reward/n_rating_pairs": sum(h is not None for g in groups for h in g.pair_heads()),
            "feedback/both_bad": both_bad_count(project),  # counted, never a preference
        }
        if len(groups) < MIN_JUDGEMENTS_TO_FIT:
            return StepResult({**counts, "reward/skipped": 1})
        _, base, tokenizer = _load_policy(project, config)
        # one head per criterion; the policy's reward is their weighted sum
        model = LMRewardModel.from_causal_lm(
            base, tokenizer, seed=context.seed, criteria=text_reward.criteria(config)
        )
        fit = fit_lm_reward_model(
            model=model,
            rankings=groups,
            epochs=REWARD_EPOCHS,
            seed=context.seed,
            device=device,
            dtype=step_dtype(config, device),
            reliability=reliability_settings(config),
            progress=lambda f: context.progress(0.9 * f),
        )
        metrics = reward_fit_metrics(counts, train=fit) | fit.criterion_metrics()
        metrics |= reliability_metrics(fit.reliability)
        label_weights = {  # of the choice's pairs, which come first in each group
            _pair_key(pair): w
            for (_, pairs), weights in zip(judged, fit.label_weights or [], strict=False)
            if weights is not None
            for pair, w in zip(pairs, weights[: len(pairs)], strict=True)
        }

        def save(directory) -> None:
            save_lm_reward_model(model, directory)
            (directory / LABEL_WEIGHTS_FILE).write_text(json.dumps(label_weights))

        name = artifacts.store_directory(project, "reward", save)

        return new_version(RewardModel, context, checkpoint=name, metrics=metrics)

    def improve_policy(self, context: StepContext) -> StepResult:
        project, config, seed = context.project, context.config, context.seed
        device = step_device(config)
        dtype = step_dtype(config, device)
        _, policy, tokenizer = _load_policy(project, config, train_seed=seed)
        # π_ref: the round's starting policy; a LoRA policy's base with adapters disabled.
        reference = lora.reference_of(policy)
        weighting: dict = {}
        if config.algorithm == "dpo":
            judged = judged_dpo_pairs(project, tokenizer)
            if not judged:
                return StepResult({"policy/skipped": 1})
            weights = None
            if (settings := reliability_settings(config)) is not None:
                weights, weighting = dpo_weights(project, judged, settings)
            # DPO, Rafailov et al. 2023; the reference is the policy this round started from
            # (None), or a LoRA policy's base. With config.processes > 1, torchrun processes
            # train it (training/ml/lm/dpo_processes.py): the same arguments and result.
            train = (
                train_dpo
                if config.processes == 1
                else partial(train_dpo_in_processes, processes=config.processes)
            )
            train_metrics = train(
                policy=policy,
                reference=reference,
                tokenizer=tokenizer,
                pairs=[texts for texts, _ in judged],
                weights=weights,
                beta=config.beta,
                **{"epochs": DPO_EPOCHS, **config.dpo},  # config.dpo: epochs, lr, batch_size
                seed=seed,
                device=device,
                dtype=dtype,
                progress=lambda f: context.progress(0.8 * f),
            )
        elif config.algorithm == "kto":
            # KTO, Ethayarajh et al. 2024, on ratings and thumbs (training/kinds/text_kto.py)
            train_metrics = text_kto.train_kto_policy(
                context,
                policy=policy,
                reference=reference,
                tokenizer=tokenizer,
                device=device,
                dtype=dtype,
            )
            if train_metrics is None:
                return StepResult({"policy/skipped": 1})
        else:
            reward_row = artifacts.latest(RewardModel, project)
            if reward_row is None:
                return StepResult({"policy/skipped": 1})
            with artifacts.local_directory(reward_row.checkpoint) as path:
                reward_model = load_lm_reward_model(path, device=device)
            train_metrics = train_lm_policy_gradient(
                algorithm=config.algorithm,
                policy=policy,
                reference=lm.frozen_copy(policy) if reference is None else reference,
                tokenizer=tokenizer,
                reward_fn=reward_model.score,
                prompts=[context_of(tokenizer, p) for p in prompts_of(project, config)],
                k=config.k,
                beta=config.beta,
                temperature=config.temperature,
                top_p=config.top_p,
                max_new_tokens=config.max_new_tokens,
                iterations=PG_ITERATIONS,
                seed=seed,
                device=device,
                dtype=dtype,
                progress=lambda f: context.progress(0.8 * f),
            )
        metrics = {
            **finite_metrics(train_metrics),
            **weighting,
            # teacher/win_rate (± _se), kl/sequence, teacher/mean_score vs the base model
            **text_eval.reference_metrics(
                policy,
                tokenizer,
                config,
                seed=seed + 7,
                progress=lambda f: context.progress(0.8 + 0.15 * f),
            ),
        }
        name = _store_policy(project, policy, tokenizer)

        return new_version(Policy, context, checkpoint=name, metrics=metrics)

    def generate_comparisons(self, context: StepContext) -> StepResult:
        project, config = context.project, context.config
        device = worker_device()  # the render queue's worker (training/devices.py)
        parent, policy, tokenizer = _load_policy(project, config)
        all_prompts = prompts_of(project, config)
        n = config.comparisons_per_round
        start = (context.step.number - 1) * n
        prompts = [all_prompts[(start + i) % len(all_prompts)] for i in range(n)]
        with lm.autocast_to(lm.forward_dtype(step_dtype(config, device), device), device):
            samples = lm.sample_responses(
                model=policy.to(device),
                tokenizer=tokenizer,
                prompts=[context_of(tokenizer, prompt) for prompt in prompts],
                k=config.k,
                temperature=config.temperature,
                top_p=config.top_p,
                max_new_tokens=config.max_new_tokens,
                seed=context.seed,
                device=device,
                progress=lambda f: context.progress(0.8 * f),
            )
        initial = (
            None
            if parent
            else _store_policy(project, _as_initial_policy(policy, config, context.seed), tokenizer)
        )
        data = {"policy_version": parent.version if parent else 0}
        items, comparisons = [], []
        for prompt, responses in zip(prompts, samples, strict=True):
            first = len(items)
            # a message-list prompt gives conversation items (text_items.sampled_item)
            items.extend(sampled_item(prompt, text, data) for text in responses)
            comparisons.append((range(first, len(items)), {}))
        return artifacts.new_comparisons(
            context,
            {"comparisons/created": len(prompts)},
            items=items,
            comparisons=comparisons,
            initial_policy=initial,
        )

    def judgeable(self, item: Item):
        """The response (a conversation's final assistant turn, its ``text``), scored by
        the sentiment lexicon."""
        return text_judgeable(item.text)


KIND = TextKind()
