"""Limits enforced before any work is done on a request."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.urls import Resolver404, resolve


class RequestBodyLimitMiddleware:
    """Refuse a body longer than REQUEST_MAX_BYTES with 413 before anything reads it
    (parsing a 20 MB JSON body costs a worker gigabytes). The views named in
    LARGE_BODY_LIMITS (URL name → bytes: the import endpoint) may take more; they read
    their bodies as streams and enforce their own limit."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return JsonResponse(
                {"detail": f"Content-Length must be a number of bytes, got {declared!r}."},
                status=400,
            )
        limit = settings.REQUEST_MAX_BYTES
        if length > limit:
            limit = max(limit, self._large_body_limit(request.path_info))
        if length > limit:
            response = JsonResponse(
                {"detail": f"The request body is {length} bytes; the limit is {limit} bytes."},
                status=413,
            )
            response["Connection"] = "close"  # the unread body is not worth reading
            return response
        return self.get_response(request)

    @staticmethod
    def _large_body_limit(path: str) -> int:
        try:
            name = resolve(path).url_name
        except Resolver404:
            return 0
        return settings.LARGE_BODY_LIMITS.get(name, 0)


class PrivateByDefaultMiddleware:
    """``Cache-Control: private, no-store`` on every answer that did not set its own and is
    an API answer or a page for a signed-in user: judgements, exports and dashboards are
    one person's view, which neither a shared proxy nor the browser's disk should keep.
    Static files (WhiteNoise answers before this) keep their long cache lifetimes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        user = getattr(request, "user", None)
        signed_in = user is not None and user.is_authenticated
        if signed_in or request.path_info.startswith(settings.API_PATH_PREFIX):
            response["Cache-Control"] = "private, no-store"
        return response
