"""API tokens expire TOKEN_TTL_S after they are issued, the token exchange then issues a
new one, and a password change revokes them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def _exchange(username: str, password: str = "pw"):
    return APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def _projects(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/projects/")


@pytest.mark.django_db
def test_the_exchange_gives_the_same_token_until_it_expires_then_a_new_one(make_user, settings):
    make_user("annie")
    first = _exchange("annie").json()
    issued = Token.objects.get(key=first["token"]).created
    assert first["expires_at"].startswith(
        (issued + timedelta(seconds=settings.TOKEN_TTL_S)).strftime("%Y-%m-%dT%H:%M")
    )
    assert _exchange("annie").json()["token"] == first["token"]
    assert _projects(first["token"]).status_code == 200

    Token.objects.filter(key=first["token"]).update(
        created=timezone.now() - timedelta(seconds=settings.TOKEN_TTL_S + 1)
    )
    expired = _projects(first["token"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"] and "/api/auth/token/" in expired.json()["detail"]

    renewed = _exchange("annie").json()["token"]
    assert renewed != first["token"]
    assert _projects(renewed).status_code == 200
    assert Token.objects.filter(user__username="annie").count() == 1


@pytest.mark.django_db
def test_a_password_change_revokes_the_token_and_other_saves_keep_it(make_user):
    annie = make_user("annie")
    key = _exchange("annie").json()["token"]
    annie.first_name = "Annie"
    annie.save()
    assert _projects(key).status_code == 200

    annie.set_password("a new and long passphrase")
    annie.save()
    assert _projects(key).status_code == 401
    assert _exchange("annie").status_code == 400  # the old password no longer works
    fresh = _exchange("annie", "a new and long passphrase").json()["token"]
    assert fresh != key and _projects(fresh).status_code == 200
