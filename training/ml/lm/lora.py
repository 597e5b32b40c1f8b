"""LoRA adapters on a causal LM through peft (Hu et al. 2021): the base's weights W stay
frozen and each targeted layer learns a low-rank update,
    h = W x + (α / r) · B A x,     A: (r, d_in), B: (d_out, r), B = 0 at the start,
so a fresh adapter leaves the model exactly as it was.

A policy version is then an adapter directory (peft's save_pretrained: adapter_config.json
and adapter_model.safetensors, with the tokenizer beside them), not a model: load_policy
puts it back on its base. The reference π_ref is the same model with its adapters
switched off (adapters_disabled), so no second copy of the base is held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from training.ml.lm.lm import load_causal_lm
from training.ml.seeding import torch_seeded

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class LoraSpec:
    """What an adapter is: rank r, scale α (the update is multiplied by α / r), dropout on
    the adapter's input, and the names of the layers it adapts (None: peft's default for
    the model type, GPT-2's fused attention projection c_attn, Llama's q_proj and v_proj)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None


def is_adapter_directory(path: str | Path) -> bool:
    """Whether ``path`` holds a peft adapter rather than a whole model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapted_layer_names(model: nn.Module) -> list[str]:
    """The distinct last names of the model's linear layers: what target_modules may name."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, (nn.Linear, Conv1D)) and name
        }
    )


def add_adapter(model: PreTrainedModel, spec: LoraSpec, *, seed: int) -> PeftModel:
    """``model`` with a fresh trainable adapter: only the adapter's parameters require
    gradients, and the model computes what it did before (B = 0). A's initialisation is
    drawn from ``seed``."""
    model_type = getattr(model.config, "model_type", None)
    if spec.target_modules is None and model_type not in (
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    ):
        raise ValueError(
            f"peft has no default LoRA target modules for model type {model_type!r}: give "
            "target_modules, names among the model's linear layers: "
            f"{', '.join(adapted_layer_names(model))}."
        )
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=None if spec.target_modules is None else list(spec.target_modules),
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),  # GPT-2's layers
        task_type="CAUSAL_LM",
    )
    with torch_seeded(seed):
        try:
            adapted = get_peft_model(model, config)
        except ValueError as exc:  # target modules that the model does not have
            raise ValueError(
                f"{exc} The model's linear layers are named: "
                f"{', '.join(adapted_layer_names(model))}."
            ) from None
    return adapted.eval()


def adapter_base(path: str | Path) -> str:
    """Where the adapter at ``path`` says its base model was loaded from."""
    config = LoraConfig.from_pretrained(str(path))
    if not config.base_model_name_or_path:
        raise ValueError(f"The adapter at {path} does not say which base model it adapts.")
    return config.base_model_name_or_path


def load_policy(
    path: str | Path,
    *,
    base_dir: str | Path | None = None,
    trainable: bool = False,
    merge: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A stored policy version in eval mode, and its tokenizer: a whole model directory as
    lm.load_causal_lm reads it, or an adapter directory on its base (``base_dir``, else the
    directory the adapter's config names). An adapter comes back as a PeftModel, its
    adapter trainable when ``trainable``, or with ``merge`` folded into the base's weights
    (W + (α / r) B A: a plain model, as fast as the base). The tokenizer is the base's."""
    if not is_adapter_directory(path):
        return load_causal_lm(path, device=device)
    base, tokenizer = load_causal_lm(base_dir or adapter_base(path), device=device)
    model = PeftModel.from_pretrained(base, str(path), is_trainable=trainable and not merge)
    if merge:
        return merged(model), tokenizer
    return model.to(device).eval(), tokenizer


def merged(model: PeftModel) -> PreTrainedModel:
    """The base model with the adapter's update folded into its weights (in place: the
    PeftModel is spent); save_pretrained on it writes a plain Hugging Face model."""
    return model.merge_and_unload().eval()


class AdaptersDisabled(nn.Module):
    """π_ref for a LoRA policy: calling it runs the policy with its adapters switched off,
    which is the base model, on the policy's own weights (no copy).

    The policy is held, not registered as a submodule, so that a trainer's
    ``reference.to(device).eval().requires_grad_(False)`` leaves the policy's adapter
    trainable; the trainer moves the policy itself."""

    def __init__(self, policy: PeftModel) -> None:
        super().__init__()
        object.__setattr__(self, "policy", policy)  # not a submodule (see above)

    @property
    def config(self) -> Any:
        return self.policy.config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.policy.disable_adapter():
            return self.policy(*args, **kwargs)


def has_adapter(model: nn.Module) -> bool:
    """Whether ``model`` is a base with a peft adapter on it."""
    return isinstance(model, PeftModel)


def reference_of(policy: PreTrainedModel | PeftModel) -> nn.Module | None:
    """π_ref of a round that trains ``policy``: its base with adapters disabled for a LoRA
    policy; None otherwise (the trainer then takes or copies the policy as it starts)."""
    return AdaptersDisabled(policy) if has_adapter(policy) else None
