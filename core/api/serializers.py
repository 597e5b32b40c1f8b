"""Serializers every API shares."""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """What every error answer carries: {"detail": message}."""

    detail = serializers.CharField()
