"""Token authentication in one query, without building it through the ORM; tokens expire
TOKEN_TTL_S after they were issued."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from core import sql


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme ("Authorization: Token <key>") and its errors; the lookup of the
    token's user is one SQL query (every API call makes it). An expired token is refused."""

    def authenticate_credentials(self, key: str):
        User = get_user_model()
        row = sql.fetchone(
            f"""
            SELECT {sql.model_columns(User, "u")}, t.created AS token_created
            FROM authtoken_token t
            JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.key = %s
            """,
            [key],
        )
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = sql.model_from_row(User, row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if timezone.now() >= expires_at(row.token_created):
            raise exceptions.AuthenticationFailed(
                "The token has expired; POST your username and password to /api/auth/token/ "
                "for a new one."
            )
        return user, key


def expires_at(created: datetime) -> datetime:
    return created + timedelta(seconds=settings.TOKEN_TTL_S)
