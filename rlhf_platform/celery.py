"""The Celery app. Tasks live in each app's ``tasks.py``; settings come from Django's."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")

app = Celery("rlhf_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
