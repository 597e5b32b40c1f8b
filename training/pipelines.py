"""Which code runs each step of a round, by the kind of project.

Each step function has the signature ``(step: Run, progress: ProgressFn) -> StepResult``
(see training.services.execute_step); the heavy lifting lives in training/ml.
"""

from __future__ import annotations

from types import ModuleType

from labeling.config import TABULAR_ALGORITHMS
from labeling.models import Project


def pipeline_for(project: Project) -> ModuleType:
    """The module implementing the loop for this project, or InvalidInput saying why the
    project cannot train. Trajectory projects go by algorithm: the tabular ones
    (value_iteration, policy_iteration, mc_control, sarsa, q_learning) to training.tabular,
    reinforce, a2c and ppo to training.trajectory (toy-text envs included: one-hot inputs).
    Text projects go to training.text once config.model_dir names a local model."""
    if project.kind == Project.Kind.TRAJECTORY:
        if (project.config or {}).get("algorithm") in TABULAR_ALGORITHMS:
            from training import tabular

            return tabular
        from training import trajectory

        return trajectory
    from training import text

    text.config_of(project)  # raises InvalidInput when config.model_dir is not set
    return text


def fit_reward_model(step, progress):
    return pipeline_for(step.project).fit_reward_model(step, progress)


def improve_policy(step, progress):
    return pipeline_for(step.project).improve_policy(step, progress)


def generate_comparisons(step, progress):
    return pipeline_for(step.project).generate_comparisons(step, progress)
