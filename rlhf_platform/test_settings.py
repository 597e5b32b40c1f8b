"""Settings for the test run: the same settings module, with development defaults."""

import atexit
import os

from rlhf_platform import embedded

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key")

from rlhf_platform.settings import *  # noqa: F403

# Embedded servers that this process had to start are stopped when it exits (those that
# were already running, for `make run` say, keep running).
atexit.register(embedded.stop_started_here)

# Per-process memory: tests clear the cache, and clearing a Redis cache flushes its database,
# the broker's queues included. tests/platform/test_settings.py checks the shared choice.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# Every test signs in from one address; the tests of the guard set their own limits.
LOGIN_FAILURES_PER_MINUTE = ACCOUNT_FAILURES_PER_HOUR = 1000
