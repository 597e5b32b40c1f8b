"""Roles: named Django groups of permissions, so that what a staff member may do is what an
admin granted, not everything because ``is_staff`` is set.

- **admin**: a superuser; every permission.
- **manager** ("Project manager"): creates projects, imports, adds annotators, exports,
  starts training and downloads policies.
- **reviewer** ("Reviewer"): sees every project, its statistics, dashboard and rounds, and
  exports judgements; changes nothing.
- **annotator**: no staff status and no group; judges what they are assigned.

Each app declares the permissions it gives each role (``labeling/roles.py``,
``training/roles.py``) with :func:`grant`; the groups are brought up to date after every
``migrate`` (Django creates the permissions at that moment too), so a fresh database has
them and an admin may still add permissions to a group by hand.
"""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db.models.signals import post_migrate

GROUPS = {"manager": "Project manager", "reviewer": "Reviewer"}
ROLES = ("admin", "manager", "reviewer", "annotator")

_GRANTS: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))


def grant(app_label: str, grants: dict[str, list[str]]) -> None:
    """Give each role in ``grants`` ("manager", "reviewer") the app's permissions named by
    codename; applied after ``migrate`` of ``app_label``. Call from the app's ready()."""
    for role, codenames in grants.items():
        if role not in GROUPS:
            raise ValueError(f"Unknown role {role!r}; roles with a group: {sorted(GROUPS)}.")
        _GRANTS[app_label][role].update(codenames)
    post_migrate.connect(_apply, dispatch_uid="core.roles.apply")


def _apply(sender, app_config=None, using="default", **kwargs) -> None:
    label = getattr(app_config, "label", None)
    for role, codenames in _GRANTS.get(label, {}).items():
        group, _ = Group.objects.using(using).get_or_create(name=GROUPS[role])
        found = Permission.objects.using(using).filter(
            content_type__app_label=label, codename__in=codenames
        )
        missing = set(codenames) - set(found.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"Role {role!r} names unknown {label} permissions: {missing}.")
        group.permissions.add(*found)


def set_role(user: AbstractBaseUser, role: str) -> None:
    """Make ``user`` exactly ``role``: staff status, superuser status and role groups set
    to match (other groups an admin gave are kept)."""
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    user.is_staff = role != "annotator"
    user.is_superuser = role == "admin"
    user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.remove(*Group.objects.filter(name__in=GROUPS.values()))
    if role in GROUPS:
        user.groups.add(Group.objects.get(name=GROUPS[role]))


def role_of(user: AbstractBaseUser) -> str:
    """The role ``user`` has, by the rules of :func:`set_role`."""
    if user.is_superuser:
        return "admin"
    if not user.is_staff:
        return "annotator"
    names = set(user.groups.values_list("name", flat=True))
    for role in ("manager", "reviewer"):
        if GROUPS[role] in names:
            return role
    return "staff without a role"
