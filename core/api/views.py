"""Site-wide API views: the OpenAPI schema, the token exchange, and the JSON 404."""

from __future__ import annotations

import threading

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core import sign_in_guard
from core.api.authentication import expires_at
from core.api.serializers import ErrorSerializer, TokenSerializer


@extend_schema(exclude=True)
class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, generated one request at a time: drf-spectacular loads its
    extension classes lazily and not thread-safely, and concurrent first requests in a
    threaded worker got 500s."""

    _lock = threading.Lock()

    def get(self, request, *args, **kwargs):
        with self._lock:
            return super().get(request, *args, **kwargs)


class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token: the one you hold while it is
    valid, else a new one. ``expires_at`` says when it stops working (TOKEN_TTL_S after it
    was issued); a password change revokes it."""

    throttle_classes = []  # failures are counted instead (core.sign_in_guard)

    @extend_schema(
        request=AuthTokenSerializer,
        responses={200: TokenSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
    )
    def post(self, request, *args, **kwargs):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        username = username[:150] if isinstance(username, str) else ""
        if refused := sign_in_guard.refusal(request, username):
            reason, wait_s = refused
            raise Throttled(wait=wait_s, detail=reason)
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            sign_in_guard.record_failure(request, username)
            raise ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        with transaction.atomic():
            token, _ = Token.objects.select_for_update().get_or_create(user=user)
            if timezone.now() >= expires_at(token.created):
                token.delete()
                token = Token.objects.create(user=user)
        return Response({"token": token.key, "expires_at": expires_at(token.created)})


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
@permission_classes([AllowAny])
def api_not_found(request, *args, **kwargs):
    raise NotFound(f"No API endpoint at {request.path}; see /api/docs/.")
