"""Site-wide API views: the OpenAPI schema, the token exchange, and the JSON 404."""

from __future__ import annotations

import threading

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.throttling import ScopedRateThrottle


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
    """Exchange a username and password for an API token."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
@permission_classes([AllowAny])
def api_not_found(request, *args, **kwargs):
    raise NotFound(f"No API endpoint at {request.path}; see /api/docs/.")
