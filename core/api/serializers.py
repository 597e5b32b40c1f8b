"""Serializers every API shares."""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """What every error answer carries: {"detail": message}, and ``field`` naming the bad
    request field (or import line part) when one is to blame."""

    detail = serializers.CharField()
    field = serializers.CharField(required=False)


class TokenSerializer(serializers.Serializer):
    """The token exchange's answer."""

    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
