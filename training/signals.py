"""Start a round when enough new judgements have arrived; a deleted project takes its
checkpoints with it."""

import logging

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from core.storage import delete_after_commit
from labeling.models import Project
from labeling.signals import judgement_recorded
from training import services
from training.models import Policy, RewardModel

logger = logging.getLogger(__name__)


@receiver(judgement_recorded, dispatch_uid="training.start_round_after_judgements")
def start_round_after_judgements(sender, *, project_id: int, project=None, **kwargs) -> None:
    # Recording a judgement never depends on training: anything that goes wrong here is
    # logged and the judgement stands.
    try:
        services.maybe_start_round_after_judgement(project_id=project_id, project=project)
    except Exception:
        logger.exception("could not check whether project %s needs a round", project_id)


@receiver(pre_delete, sender=Project, dispatch_uid="training.delete_project_checkpoints")
def delete_project_checkpoints(sender, instance: Project, **kwargs) -> None:
    delete_after_commit(
        name
        for model in (Policy, RewardModel)
        for name in model.objects.filter(project=instance).values_list("checkpoint", flat=True)
    )
