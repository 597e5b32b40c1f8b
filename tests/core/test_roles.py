"""Roles and permissions: what staff may do is what an admin granted (core/roles.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.test import Client

from core import roles


def _codenames(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_migrate_leaves_the_two_role_groups_with_their_permissions(db):
    manager, reviewer = _codenames("Project manager"), _codenames("Reviewer")

    assert {
        "labeling.add_project",
        "labeling.manage_members",
        "labeling.import_items",
        "labeling.export_judgements",
        "training.start_round",
        "training.export_policy",
        "training.view_run",
    } <= manager
    assert {"labeling.export_judgements", "training.view_run", "labeling.view_judgement"} <= (
        reviewer
    )
    assert not {"labeling.add_project", "labeling.import_items", "training.start_round"} & (
        reviewer
    )
    assert reviewer < manager


def test_set_role_makes_a_user_exactly_that_role(make_user):
    user = make_user("dana")
    for role in ("manager", "reviewer", "admin", "annotator"):
        roles.set_role(user, role)
        user.refresh_from_db()
        assert roles.role_of(user) == role
    assert not user.is_staff and not user.is_superuser and not user.groups.exists()


def test_set_role_keeps_groups_an_admin_gave(make_user):
    user = make_user("erin")
    extra = Group.objects.create(name="Night shift")
    user.groups.add(extra)

    roles.set_role(user, "reviewer")

    assert set(user.groups.values_list("name", flat=True)) == {"Night shift", "Reviewer"}


def test_the_set_role_command_sets_and_prints_a_role(make_user, capsys):
    make_user("frank")

    call_command("set_role", "frank", "reviewer")
    call_command("set_role", "frank")

    assert capsys.readouterr().out.splitlines() == ["frank: reviewer", "frank: reviewer"]


def test_the_set_role_command_refuses_an_unknown_user_and_role(make_user):
    make_user("gina")
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("set_role", "nobody", "manager")
    with pytest.raises(CommandError, match="invalid choice: 'owner'"):
        call_command("set_role", "gina", "owner")


def test_one_permission_granted_by_hand_allows_that_action_alone(
    make_user, make_project, api_client_for
):
    clerk = make_user("clerk", role="manager")
    clerk.groups.clear()  # staff, no permissions
    make_project("p")
    client = api_client_for(clerk)
    assert client.get("/api/projects/p/export/?format=trl").status_code == 403

    clerk.user_permissions.add(Permission.objects.get(codename="export_judgements"))

    assert client.get("/api/projects/p/export/?format=trl").status_code == 200
    refused = client.post("/api/projects/", {"slug": "q", "name": "Q"}, format="json")
    assert refused.status_code == 403
    assert "labeling.add_project" in refused.json()["detail"]


def test_the_dashboard_names_the_permission_a_staff_user_lacks(make_user, make_project):
    bare, reviewer = make_user("bare", role="manager"), make_user("rita", role="reviewer")
    bare.groups.clear()
    make_project("traj", kind="trajectory", config={"env_id": "Pendulum-v1"})
    client = Client()

    client.force_login(bare)
    refused = client.get("/projects/traj/dashboard/")
    client.force_login(reviewer)
    shown = client.get("/projects/traj/dashboard/")

    assert refused.status_code == 403
    assert "training.view_run" in refused.content.decode()
    assert shown.status_code == 200
