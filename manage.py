#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    checkout = os.path.isdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".git"))
    if checkout and not os.environ.get("SECRET_KEY"):
        # A command typed in a git checkout with no production settings given: development
        # defaults, as `make run` sets them. An image (no .git), gunicorn and Celery keep
        # DEBUG off and refuse to start without SECRET_KEY; DEBUG=0 here does the same.
        os.environ.setdefault("DEBUG", "1")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
