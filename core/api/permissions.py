"""Who may call what: helpers the apps' views share. Staff actions need staff status and
the Django permission for the action (core/roles.py groups them into roles)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from core.errors import NotAllowed


def require_staff(user: AbstractBaseUser, what: str = "do this") -> None:
    """NotAllowed (403) unless ``user`` is staff; ``what`` completes "Only staff may ..."."""
    if not user.is_staff:
        raise NotAllowed(f"Only staff may {what}.")


def may(user: AbstractBaseUser, permission: str) -> bool:
    """Whether ``user`` is staff with ``permission`` ("app_label.codename"); superusers
    have every permission."""
    return bool(user.is_active and user.is_staff and user.has_perm(permission))


def require_permission(user: AbstractBaseUser, permission: str, what: str) -> None:
    """NotAllowed (403) unless ``user`` is staff with ``permission``; the message says which
    permission is missing and how to get it."""
    require_staff(user, what)
    if not may(user, permission):
        raise NotAllowed(
            f"You may not {what}: it needs the permission {permission!r}. An admin can give "
            "it to you, or a role that has it (manage.py set_role USER manager)."
        )
