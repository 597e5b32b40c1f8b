"""Start a round when enough new judgements have arrived."""

import logging

from django.dispatch import receiver

from labeling.signals import judgement_recorded
from training import services

logger = logging.getLogger(__name__)


@receiver(judgement_recorded, dispatch_uid="training.start_round_after_judgements")
def start_round_after_judgements(sender, *, project_id: int, project=None, **kwargs) -> None:
    # Recording a judgement never depends on training: anything that goes wrong here is
    # logged and the judgement stands.
    try:
        services.maybe_start_round_after_judgement(project_id=project_id, project=project)
    except Exception:
        logger.exception("could not check whether project %s needs a round", project_id)
