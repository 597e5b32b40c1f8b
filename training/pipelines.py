"""Which code runs each step of a round, by the kind of project.

Each step function has the signature ``(step: Run, progress: ProgressFn) -> StepResult``
(see training.services.execute_step); the heavy lifting lives in training/ml.
"""

from __future__ import annotations

from types import ModuleType

from core.errors import InvalidInput
from labeling.config import TABULAR_ALGORITHMS
from labeling.models import Project


def check_trainable(project: Project) -> None:
    """Raise InvalidInput saying what is missing when this project cannot train. Cheap:
    it imports no training code, so a web request can ask after every judgement."""
    if project.kind == Project.Kind.TEXT and not (project.config or {}).get("model_dir"):
        raise InvalidInput(
            f"Project {project.slug!r} has no config.model_dir: set it to a local Hugging Face "
            "causal LM directory (manage.py build_demo_lm makes one) to train."
        )


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
    check_trainable(project)
    from training import text

    return text


def fit_reward_model(step, progress):
    return pipeline_for(step.project).fit_reward_model(step, progress)


def improve_policy(step, progress):
    return pipeline_for(step.project).improve_policy(step, progress)


def generate_comparisons(step, progress):
    return pipeline_for(step.project).generate_comparisons(step, progress)
