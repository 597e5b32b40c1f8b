"""A tiny demo language model for the LM tests, built once per test session.

Each test module wraps tiny_lm_dir in its own module-scoped fixture; the directory lives in
pytest's session temp folder, so the second module finds it built.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.ml.lm.demo_lm import build_demo_lm, read_prompts
from training.ml.lm.lm import load_causal_lm

# About 6 seconds on one CPU thread; enough to say "I think the cafe is lovely."
TINY_LM = {
    "vocab_size": 800,
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 48,
    "n_positions": 64,
    "steps": 200,
    "batch_size": 16,
    "learning_rate": 1e-2,
    "seed": 0,
}


def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo LM's directory, built on first use in this session."""
    out_dir = tmp_path_factory.getbasetemp() / "tiny_demo_lm"
    if not (out_dir / "demo_lm.json").is_file():
        build_demo_lm(out_dir=out_dir, **TINY_LM)
    return out_dir


def load_tiny_lm(tmp_path_factory: pytest.TempPathFactory):
    """(model, tokenizer) of the tiny LM, a fresh copy each call."""
    return load_causal_lm(tiny_lm_dir(tmp_path_factory))


def demo_prompts(n: int) -> list[str]:
    return read_prompts()[:n]
