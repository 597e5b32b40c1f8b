"""What a text or a trajectory project's ``config`` may say: frozen dataclasses that the
training app registers with labeling's validator (``TrainingConfig.ready``).

This module is cheap to import: the web process validates configs with it and asks after
every judgement whether a project can train, and must not load torch to do so. gymnasium
is imported only when an environment id is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import InvalidConfig, InvalidField, InvalidInput
from labeling import conversations
from labeling.config import (
    MAX_K,
    LabelingConfig,
    float_in,
    int_in,
    is_bool,
    one_of,
    optional,
    optional_seed,
    setting,
    setting_group,
)
from training.kinds.config_groups import (
    A2C_KEYS,
    DPO_KEYS,
    KTO_KEYS,
    LORA_KEYS,
    PPO_KEYS,
    REINFORCE_KEYS,
    RELIABILITY_KEYS,
    STRENGTH_MARGIN_KEYS,
    STRENGTH_MARGINS,
)
from training.ml.schedules import comparisons_by_round

POLICY_GRADIENT_ALGORITHMS = ("reinforce", "a2c", "ppo")
# Tabular algorithms need Discrete observations and actions; the model-based ones also need
# the env's model, env.unwrapped.P (gymnasium's toy-text envs).
MODEL_BASED_ALGORITHMS = ("policy_iteration", "value_iteration")
TABULAR_ALGORITHMS = (*MODEL_BASED_ALGORITHMS, "mc_control", "sarsa", "q_learning")
TRAJECTORY_ALGORITHMS = (*POLICY_GRADIENT_ALGORITHMS, *TABULAR_ALGORITHMS)
TEXT_ALGORITHMS = ("dpo", "kto", "ppo", "reinforce")
MAX_PROCESSES = 64  # torchrun processes of one text training step


def _env_id(v: Any) -> str | None:
    if not isinstance(v, str) or not v:
        return f"must be a gymnasium environment id, got {v!r}"
    if not _registered(v):
        return f"{v!r} is not a registered gymnasium environment"
    return None


@lru_cache(maxsize=256)
def _registered(env_id: str) -> bool:
    from training.ml import envs  # gymnasium loads only when an env id is checked

    return envs.is_registered(env_id)


@lru_cache(maxsize=64)
def _env_interface(env_id: str) -> tuple[bool, bool]:
    from training.ml import envs

    return envs.env_interface(env_id)


def _prompts(v: Any) -> str | None:
    """Strings, or message lists (a conversation's prompt), which TextConfig.check checks
    message by message."""
    if not isinstance(v, list) or not all(
        (isinstance(p, str) and p.strip() and "\x00" not in p) or isinstance(p, list) for p in v
    ):
        return (
            "must be a list of non-empty strings without NUL characters, or of message lists "
            "[{role, content}]"
        )
    return None


def _check_message_prompts(name: str, prompts: list) -> None:
    """InvalidConfig naming the bad part (``prompts[1][0].role``) of a message-list prompt."""
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, list):
            try:
                conversations.check_messages(prompt, field=f"{name}[{i}]")
            except InvalidField as error:
                raise InvalidConfig(error.field, error.message.split(": ", 1)[1]) from None


def _model_dir(v: Any) -> str | None:
    if v in (None, ""):
        return None
    if not isinstance(v, str):
        return f"must be a path to a local model directory, got {v!r}"
    if not (Path(v) / "config.json").is_file():
        return f"{v!r} is not a model directory (no config.json there)"
    return None


# Where a project's steps run and what its forward passes compute in (training/devices.py).
FORWARD_DTYPES = ("auto", "float32", "bfloat16")  # training.ml.lm.lm.FORWARD_DTYPES


def _device(v: Any) -> str | None:
    if isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        return None
    return (
        "must be auto (the worker's TRAINING_DEVICE setting), cpu, cuda or cuda:N "
        f"(a GPU's index); got {v!r}"
    )


def _check_kto(config: TextConfig) -> None:
    """KTO's rating thresholds must not overlap, and it weighs no labels by reliability."""
    from labeling.preferences import DESIRABLE_AT, UNDESIRABLE_AT  # its defaults

    desirable_at = config.kto.get("desirable_at", DESIRABLE_AT)
    undesirable_at = config.kto.get("undesirable_at", UNDESIRABLE_AT)
    if undesirable_at >= desirable_at:
        key = "undesirable_at" if "undesirable_at" in config.kto else "desirable_at"
        raise InvalidConfig(
            f"kto.{key}",
            f"undesirable_at ({undesirable_at}) must be below desirable_at ({desirable_at}): "
            "a rating at or below undesirable_at is undesirable, at or above desirable_at "
            "desirable",
        )
    if config.algorithm == "kto" and reliability_enabled(config):
        raise InvalidConfig(
            "reliability.enabled",
            "annotator reliability weighs preference pairs (the reward model's and DPO's); "
            "kto trains on ratings and thumbs: switch reliability off or use dpo.",
        )


@dataclass(frozen=True)
class TextConfig(LabelingConfig):
    """A text project: a local causal LM, its prompts, how it samples and trains (and
    LabelingConfig's keys)."""

    model_dir: str | None = setting(None, _model_dir)
    prompts: list[str] = setting([], _prompts)
    # held out for the per-round comparison with the reference (training/kinds/text_eval.py)
    eval_prompts: list[str] = setting([], _prompts)
    k: int = setting(2, int_in(2, MAX_K))
    temperature: float = setting(1.0, float_in(0.0, 10.0, open_low=True))
    top_p: float = setting(1.0, float_in(0.0, 1.0, open_low=True))
    max_new_tokens: int = setting(48, int_in(1, 4096))
    algorithm: str = setting("dpo", one_of(*TEXT_ALGORITHMS))
    beta: float = setting(0.1, float_in(0.0, 100.0, open_low=True))
    comparisons_per_round: int = setting(32, int_in(1, 100_000))
    seed: int | None = setting(0, optional_seed)
    reliability: dict = setting_group(RELIABILITY_KEYS)
    lora: dict = setting_group(LORA_KEYS)
    # auto: the worker's TRAINING_DEVICE; a CUDA device the worker lacks fails the step
    device: str = setting("auto", _device)
    # of the LM's forward passes (bf16 autocast; weights and optimiser state stay fp32);
    # auto: bf16 where the device has it in hardware, else fp32
    dtype: str = setting("auto", one_of(*FORWARD_DTYPES))
    # DPO's training step as this many torchrun processes (training/ml/lm/dpo_processes.py):
    # gloo on the CPU, one GPU each on CUDA; 1 trains in the worker's own process
    processes: int = setting(1, int_in(1, MAX_PROCESSES))
    dpo: dict = setting_group(DPO_KEYS)  # algorithm "dpo"'s optimiser overrides
    kto: dict = setting_group(KTO_KEYS)  # algorithm "kto"'s overrides
    # {"slight", "clear", "strong": m ≥ 0}: the reward model's margin per strength; what is
    # not given takes STRENGTH_MARGINS
    strength_margins: dict = setting_group(STRENGTH_MARGIN_KEYS)

    def check(self) -> None:
        """Checks across keys: only DPO trains over several processes. And a message-list
        prompt's messages (labeling/conversations.py)."""
        _check_message_prompts("prompts", self.prompts)
        _check_message_prompts("eval_prompts", self.eval_prompts)
        _check_kto(self)
        if self.processes > 1 and self.algorithm != "dpo":
            raise InvalidConfig(
                "processes",
                f"training over several processes is implemented for dpo; {self.algorithm!r} "
                "samples as it trains and runs in one process: set processes to 1.",
            )

    def missing_for_training(self) -> str | None:
        """What the project must set before it can train, or None."""
        if not self.model_dir:
            return (
                "has no config.model_dir: set it to a local Hugging Face causal LM directory "
                "(manage.py build_demo_lm makes one) to train."
            )
        return None


@dataclass(frozen=True)
class TrajectoryConfig(LabelingConfig):
    """A trajectory project: a gymnasium env, its segments and clips, how it trains (and
    LabelingConfig's keys)."""

    env_id: str = setting("Pendulum-v1", _env_id)
    segment_length: int = setting(25, int_in(2, 10_000))
    fps: int = setting(20, int_in(1, 120))
    algorithm: str = setting("ppo", one_of(*TRAJECTORY_ALGORITHMS))
    env_steps_per_round: int = setting(4096, int_in(1, 100_000_000))
    comparisons_per_round: int = setting(16, int_in(1, 100_000))
    selection: str = setting("disagreement", one_of("random", "disagreement", "ucb"))
    ensemble_size: int = setting(3, int_in(1, 32))
    render_clips: bool = setting(True, is_bool)
    gamma: float = setting(0.99, float_in(0.0, 1.0))
    # the learned reward's standard deviation as the policy sees it; None: by action-space
    # family (training.kinds.trajectory.REWARD_SCALE_DEFAULTS)
    reward_scale: float | None = setting(None, optional(float_in(0.0, 1000.0, open_low=True)))
    seed: int | None = setting(0, optional_seed)
    eval_episodes: int = setting(20, int_in(1, 1000))
    recent_policies: int = setting(1, int_in(1, 16))
    label_schedule: str = setting("uniform", one_of("uniform", "front_loaded"))
    label_budget: int | None = setting(None, optional(int_in(1, 10_000_000)))
    label_rounds: int | None = setting(None, optional(int_in(1, 100_000)))
    initial_label_fraction: float = setting(0.25, float_in(0.0, 1.0))
    ppo: dict = setting_group(PPO_KEYS)
    a2c: dict = setting_group(A2C_KEYS)
    reinforce: dict = setting_group(REINFORCE_KEYS)
    # auto: the worker's TRAINING_DEVICE; a CUDA device the worker lacks fails the step
    device: str = setting("auto", _device)
    # Accepted for one vocabulary across kinds, but the control nets (two layers of 64) and
    # reward ensembles always train in fp32: at their size bf16 saves no time, and its 8-bit
    # mantissa blurs PPO's probability ratios and the Bradley-Terry margins.
    dtype: str = setting("auto", one_of(*FORWARD_DTYPES))
    reliability: dict = setting_group(RELIABILITY_KEYS)
    # {"slight", "clear", "strong": m ≥ 0}: the reward ensemble's margin per strength; what
    # is not given takes STRENGTH_MARGINS
    strength_margins: dict = setting_group(STRENGTH_MARGIN_KEYS)

    @property
    def tabular(self) -> bool:
        return self.algorithm in TABULAR_ALGORITHMS

    def missing_for_training(self) -> str | None:
        return None

    def comparisons_in_batch(self, number: int) -> int:
        """How many comparisons the project's ``number``-th batch holds (1-based; a batch is
        what one generate_comparisons step makes): ``comparisons_per_round`` with the
        uniform schedule; with ``front_loaded``, ``initial_label_fraction`` of
        ``label_budget`` in batch 1 (from the initial policy), then the rest over the next
        ``label_rounds`` batches at a decaying rate (training.ml.schedules), then none."""
        if self.label_schedule == "uniform":
            return self.comparisons_per_round
        counts = comparisons_by_round(
            budget=self.label_budget,
            rounds=self.label_rounds,
            initial_fraction=self.initial_label_fraction,
            schedule=self.label_schedule,
        )
        return counts[number - 1] if number <= len(counts) else 0

    def check(self) -> None:
        """Checks across keys: the schedule must have its budget, and the algorithm must
        suit the env and the selection."""
        if self.label_schedule == "front_loaded":
            for key in ("label_budget", "label_rounds"):
                if getattr(self, key) is None:
                    raise InvalidConfig(
                        key,
                        "the front_loaded label schedule needs label_budget (comparisons "
                        "in all) and label_rounds (the rounds after the first to spread them over)",
                    )
        for part in ("ratings", "edit"):
            if part in self.feedback:
                raise InvalidConfig(
                    f"feedback.{part}",
                    f"{part} are asked of text projects only; a trajectory project's form "
                    "may have strength, critique and both_bad",
                )
        if self.selection == "ucb" and not self.tabular:
            raise InvalidConfig(
                "selection",
                "'ucb' pair selection is implemented for the tabular algorithms "
                f"({', '.join(TABULAR_ALGORITHMS)}); with {self.algorithm!r} use "
                "'random' or 'disagreement'.",
            )
        if not self.tabular:
            return
        if self.gamma >= 1.0:
            raise InvalidConfig(
                "gamma",
                f"{self.algorithm!r} optimises a learned reward, which may pay for looping "
                "forever; use a discount below 1 (0.9 suits FrozenLake).",
            )
        try:
            discrete, has_model = _env_interface(self.env_id)
        except Exception as exc:  # a registered env whose dependencies are missing, say
            raise InvalidConfig("env_id", f"{self.env_id!r} could not be created: {exc}") from None
        if self.algorithm in MODEL_BASED_ALGORITHMS and not has_model:
            raise InvalidConfig(
                "algorithm",
                f"{self.algorithm!r} needs the environment's model (env.unwrapped.P with "
                f"Discrete observations and actions), which {self.env_id!r} does not expose. "
                "Use a toy-text env (FrozenLake-v1, FrozenLakeNotSlippery-v1, "
                "CliffWalking-v1, Taxi-v4), or a model-free algorithm: mc_control, sarsa, "
                "q_learning for Discrete observations, reinforce, a2c, ppo otherwise.",
            )
        if not discrete:
            raise InvalidConfig(
                "algorithm",
                f"{self.algorithm!r} is tabular and needs Discrete observations and actions; "
                f"{self.env_id!r} has other spaces. Use reinforce, a2c or ppo.",
            )


CONFIG_TYPES = {"text": TextConfig, "trajectory": TrajectoryConfig}


def reliability_enabled(config: TextConfig | TrajectoryConfig) -> bool:
    """Whether the project weights labels by its annotators' estimated reliability."""
    return bool(config.reliability.get("enabled", False))


def strength_margin(config: TextConfig | TrajectoryConfig, strength: str, p: float) -> float:
    """m(strength) of a pair judged with ``strength`` and P[a ≻ b] = ``p``: the project's
    margin for it (STRENGTH_MARGINS where config.strength_margins does not say); 0 for a
    tie and for a pair without a strength."""
    if p == 0.5 or not strength:
        return 0.0
    return float({**STRENGTH_MARGINS, **config.strength_margins}.get(strength, 0.0))


def check_trainable(slug: str, config: TextConfig | TrajectoryConfig) -> None:
    """InvalidInput saying what is missing when project ``slug`` cannot train."""
    if reason := config.missing_for_training():
        raise InvalidInput(f"Project {slug!r} {reason}")
