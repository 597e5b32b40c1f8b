"""The nested objects of a project's config: each a group of optional overrides with its
keys' checks (labeling.config.setting_group). Cheap to import, as training/kinds/config.py."""

from __future__ import annotations

from typing import Any

from labeling.config import float_in, int_in, is_bool, optional
from labeling.feedback import RATING_MAX, RATING_MIN

# Optimiser hyperparameters a trajectory project may override, per algorithm (the fields of
# training.ml.control's PPOConfig, A2CConfig and ReinforceConfig but gamma, which is the
# project's own key). What is not given takes the defaults of the env's action-space family
# (training.kinds.trajectory.OPTIMIZER_DEFAULTS).
_RATE = float_in(0.0, 1.0, open_low=True)
_COEF = float_in(0.0, 100.0)
PPO_KEYS = {
    "num_envs": int_in(1, 256),
    "num_steps": int_in(1, 100_000),
    "gae_lambda": float_in(0.0, 1.0),
    "learning_rate": _RATE,
    "update_epochs": int_in(1, 1000),
    "num_minibatches": int_in(1, 100_000),
    "clip_coef": float_in(0.0, 10.0, open_low=True),
    "kl_coef": _COEF,
    "kl_target": optional(float_in(0.0, 10.0, open_low=True)),
    "ent_coef": _COEF,
    "vf_coef": _COEF,
    "max_grad_norm": float_in(0.0, 1e6, open_low=True),
    "normalize_advantages": is_bool,
}
A2C_KEYS = {
    "num_envs": int_in(1, 256),
    "num_steps": int_in(1, 100_000),
    "learning_rate": _RATE,
    "vf_coef": _COEF,
    "ent_coef": _COEF,
    "max_grad_norm": float_in(0.0, 1e6, open_low=True),
    "normalize_advantages": is_bool,
}
REINFORCE_KEYS = {
    "num_envs": int_in(1, 256),
    "learning_rate": _RATE,
    "vf_coef": _COEF,
    "ent_coef": _COEF,
    "normalize_advantages": is_bool,
}


# Annotator reliability (training/ml/reliability.py): each annotator's flip rate ε_a learned
# with the reward model by EM, and every label weighted by the posterior that it is right.
# Off unless "enabled" is true; the other keys override ReliabilityConfig's defaults.
RELIABILITY_KEYS = {
    "enabled": is_bool,
    "prior_flip_rate": float_in(0.0, 0.49, open_low=True),
    "prior_strength": float_in(0.0, 1e6, open_low=True),
    "em_iterations": int_in(1, 20),
}


# KTO (training/ml/lm/kto.py; Ethayarajh et al. 2024) on a text project: overrides of
# training/kinds/text_kto.py's defaults. β is the project's own beta, as for DPO.
# desirable_weight, undesirable_weight: λ_D, λ_U (default 1, the paper's and TRL's); the
# paper advises λ_D n_D / λ_U n_U in [1, 4/3] (kto/weight_ratio in the round's metrics).
# desirable_at, undesirable_at: a completion whose weighted rating is at or above / at or
# below them is desirable / undesirable (labeling.preferences.verdicts; default 5 and 3).
# DPO's optimiser for a text project (training/ml/lm/dpo.py DPOConfig; what is left out keeps
# the step's defaults: 2 epochs, Adam 1e-4, 8 pairs per step, sized for the demo LM; the
# DPO paper used 1e-6 and 64 pairs for pretrained LMs of 10^8+ parameters).
DPO_KEYS = {
    "epochs": int_in(1, 100),
    "lr": _RATE,
    "batch_size": int_in(1, 4096),
}

KTO_KEYS = {
    "desirable_weight": float_in(0.0, 100.0, open_low=True),
    "undesirable_weight": float_in(0.0, 100.0, open_low=True),
    "desirable_at": float_in(RATING_MIN, RATING_MAX),
    "undesirable_at": float_in(RATING_MIN, RATING_MAX),
    "epochs": int_in(1, 100),
    "lr": _RATE,
}


# The Bradley-Terry margin m(strength) a pair's winner must clear, by the judgement's
# strength (training/ml/bradley_terry.py; Llama 2, Touvron et al. 2023, eq. 2): Llama 2's
# "small" margins, 1/3, 2/3 and 1 for "slightly better", "better" and "significantly
# better" (its Table 28), our slight, clear and strong. Larger margins for stronger
# judgements improved its reward model most on the pairs that were easy to tell apart;
# rewards are logits, so a margin of 1 asks the winner to be e times likelier. A tie and a
# pair without a strength have margin 0. config.strength_margins overrides any of them.
STRENGTH_MARGINS = {"slight": 1 / 3, "clear": 2 / 3, "strong": 1.0}
STRENGTH_MARGIN_KEYS = {strength: float_in(0.0, 100.0) for strength in STRENGTH_MARGINS}


def _lora_dropout(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
        return f"must be a number in [0, 1), got {v!r}"
    return None


def _module_names(v: Any) -> str | None:
    if not isinstance(v, list) or not v or not all(isinstance(m, str) and m for m in v):
        return (
            "must be a non-empty list of layer names (c_attn for GPT-2, q_proj and v_proj "
            f"for Llama, say), or left out for peft's default for the model; got {v!r}"
        )
    return None


# LoRA (Hu et al. 2021) through peft on a text project's policy: off when empty; any key
# switches it on, the others taking LoraSpec's defaults (training/ml/lm/lora.py).
LORA_KEYS = {
    "r": int_in(1, 1024),
    "alpha": float_in(0.0, 1e6, open_low=True),
    "dropout": _lora_dropout,
    "target_modules": _module_names,
}
