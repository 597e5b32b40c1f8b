"""A synthetic teacher for text: a transparent sentiment score that the trajectory teachers
of training/ml/teachers.py can judge.

The score of a response is the sum of its words' weights in a sentiment lexicon
(demo/sentiment_lexicon.tsv: word<TAB>weight, −3..+3, unlisted words 0):
    S(y) = Σ_{w ∈ words(y)} weight(w)
words(y) = the lower-cased runs of letters and apostrophes in y. With
length_normalized=True, S(y) / max(1, |words(y)|) instead, a per-word average that does not
reward saying more. No negation handling: "not" carries its own negative weight.

text_judgeable(y) wraps S(y) as a one-step true_rewards array, so every teacher preset
(rational = Bradley-Terry on S, myopic, mistake, equal, skip) judges text unchanged;
their thresholds are in units of S.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor

DEMO_LEXICON = Path(__file__).resolve().parents[3] / "demo" / "sentiment_lexicon.tsv"

_WORD = re.compile(r"[a-z']+")


def load_lexicon(path: str | Path = DEMO_LEXICON) -> Mapping[str, float]:
    """word → weight from a word<TAB>weight file; lines starting with # are comments."""
    lexicon: dict[str, float] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected word<TAB>weight, got {line!r}.")
        lexicon[parts[0].strip().lower()] = float(parts[1])
    return MappingProxyType(lexicon)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lexicon_score(
    text: str, lexicon: Mapping[str, float], *, length_normalized: bool = False
) -> float:
    """S(y) = Σ weight(w) over the words of text; divided by the word count when
    length_normalized."""
    tokens = words(text)
    total = sum(lexicon.get(word, 0.0) for word in tokens)
    return total / max(1, len(tokens)) if length_normalized else total


@dataclass(frozen=True)
class JudgeableText:
    """A response as the synthetic teachers see it: true_rewards = [S(y)]."""

    text: str
    true_rewards: np.ndarray = field(repr=False)  # (1,)


def text_judgeable(
    text: str, *, lexicon: Mapping[str, float] | None = None, length_normalized: bool = False
) -> JudgeableText:
    """Wrap text for SyntheticTeacher.judge / rank. lexicon=None reads the demo lexicon
    (pass a loaded one when judging many texts)."""
    lexicon = load_lexicon() if lexicon is None else lexicon
    score = lexicon_score(text, lexicon, length_normalized=length_normalized)
    return JudgeableText(text=text, true_rewards=np.array([score], dtype=np.float64))


def lexicon_reward_fn(
    lexicon: Mapping[str, float], *, length_normalized: bool = False
) -> Callable[[Sequence[str], Sequence[str]], Tensor]:
    """reward_fn(prompts, responses) -> (N,) float tensor of S(y): the teacher's own score
    as a reward, for policy-gradient runs that skip the learned reward model."""

    def reward_fn(prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        scores = [lexicon_score(r, lexicon, length_normalized=length_normalized) for r in responses]
        return torch.tensor(scores, dtype=torch.float32)

    return reward_fn
