"""Celery tasks of the demo."""

from celery import shared_task

from demo import lm_build


@shared_task(name="demo.build_demo_lm", acks_late=True)
def build_demo_lm(steps: int | None = None) -> str:
    """Build the demo language model, create the demo-lm project and queue its first round
    (runplatform queues this rather than making the web app wait for it)."""
    return lm_build.build_and_seed(steps=steps)
