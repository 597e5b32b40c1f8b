"""The kinds of training loop, and which one a project runs.

Each kind meets one small interface (:class:`Kind`): its config dataclass, the three steps
of a round, and what a synthetic teacher judges. ``trajectory`` (policy-gradient control on
any gymnasium env), ``tabular`` (a trajectory project whose algorithm is tabular) and
``text`` (language models) each live in a module of their own holding only what differs.

Their modules load torch, transformers and gymnasium, so they are imported when a step
first asks for one (``kind_for``), never by the web process's judgement path.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from labeling.config import project_config
from labeling.models import Item, Project
from training.kinds.config import TrajectoryConfig, check_trainable
from training.models import Run
from training.steps import STEP_BY_KIND, ProgressFn, StepContext, StepResult, round_seed


class Kind(Protocol):
    name: str
    config_type: type

    def fit_reward_model(self, context: StepContext) -> StepResult:
        """Fit the reward model on every usable judgement (or skip, saying why)."""

    def improve_policy(self, context: StepContext) -> StepResult:
        """Train the newest policy against the newest reward model (or the judgements)."""

    def generate_comparisons(self, context: StepContext) -> StepResult:
        """Make the next comparisons from the newest policy."""

    def judgeable(self, item: Item) -> Any:
        """What a synthetic teacher judges of an item."""


_MODULES = {
    "trajectory": "training.kinds.trajectory",
    "tabular": "training.kinds.tabular",
    "text": "training.kinds.text",
}


def kind_name(project: Project, config: Any) -> str:
    """``text``; ``tabular`` for a trajectory project with a tabular algorithm;
    ``trajectory`` otherwise."""
    if isinstance(config, TrajectoryConfig):
        return "tabular" if config.tabular else "trajectory"
    return project.kind


def kind_for(project: Project, config: Any | None = None) -> Kind:
    """The kind that trains ``project`` (its module imported on first use)."""
    if config is None:
        config = project_config(project.kind, project.config)
    return importlib.import_module(_MODULES[kind_name(project, config)]).KIND


def perform_step(step: Run, progress: ProgressFn) -> StepResult:
    """The work of one step of a round (services.execute_step's ``work``): the project's
    config validated once, its kind, and the step's method of that kind."""
    project = step.project
    config = project_config(project.kind, project.config)
    check_trainable(project.slug, config)
    context = StepContext(
        step=step,
        project=project,
        config=config,
        seed=round_seed(config, step.number),
        progress=progress,
    )
    return STEP_BY_KIND[step.kind].work(kind_for(project, config), context)
