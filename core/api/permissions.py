"""Who may call what: helpers the apps' views share."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from core.errors import NotAllowed


def require_staff(user: AbstractBaseUser, what: str = "do this") -> None:
    """NotAllowed (403) unless ``user`` is staff; ``what`` completes "Only staff may ..."."""
    if not user.is_staff:
        raise NotAllowed(f"Only staff may {what}.")
