"""Which code runs each step of a round, by the kind of project.

Each step function has the signature ``(step: Run, progress: ProgressFn) -> StepResult``
(see training.services.execute_step); the heavy lifting lives in training/ml.
"""

from __future__ import annotations

from types import ModuleType

from labeling.errors import InvalidInput
from labeling.models import Project


def pipeline_for(project: Project) -> ModuleType:
    """The module implementing the loop for this project, or InvalidInput saying why the
    project cannot train."""
    if project.kind == Project.Kind.TRAJECTORY:
        from training import trajectory

        return trajectory
    raise InvalidInput(
        f"Project {project.slug!r} is a {project.kind} project; training rounds for "
        "text projects are not available yet (the language-model loop is issue 4)."
    )


def fit_reward_model(step, progress):
    return pipeline_for(step.project).fit_reward_model(step, progress)


def improve_policy(step, progress):
    return pipeline_for(step.project).improve_policy(step, progress)


def generate_comparisons(step, progress):
    return pipeline_for(step.project).generate_comparisons(step, progress)
