"""Token authentication in one query, without building it through the ORM."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from core import sql


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme ("Authorization: Token <key>") and its errors; the lookup of the
    token's user is one SQL query (every API call makes it)."""

    def authenticate_credentials(self, key: str):
        User = get_user_model()
        row = sql.fetchone(
            f"""
            SELECT {sql.model_columns(User, "u")} FROM authtoken_token t
            JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.key = %s
            """,
            [key],
        )
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = sql.model_from_row(User, row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, key
