"""A password change revokes the user's API tokens (Django already ends their sessions)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token


def note_password_change(sender, instance, update_fields=None, **kwargs) -> None:
    """pre_save: mark a user whose stored password hash is about to change (a login's save
    of last_login alone asks nothing)."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._revoke_tokens = stored is not None and stored != instance.password


def revoke_tokens_after_password_change(sender, instance, **kwargs) -> None:
    """post_save: delete the tokens of a user whose password just changed."""
    if getattr(instance, "_revoke_tokens", False):
        Token.objects.filter(user_id=instance.pk).delete()
        instance._revoke_tokens = False


def connect() -> None:
    from django.db.models.signals import post_save, pre_save

    user_model = get_user_model()
    pre_save.connect(note_password_change, sender=user_model, dispatch_uid="core-password-1")
    post_save.connect(
        revoke_tokens_after_password_change, sender=user_model, dispatch_uid="core-password-2"
    )
