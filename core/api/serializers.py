"""Serializers every API shares."""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """What every error answer carries: {"detail": message}."""

    detail = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    """The token exchange's answer."""

    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
