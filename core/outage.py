"""Answers while the database is down: 503 with Retry-After, never a bare 500."""

import sys

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.defaults import server_error

DATABASE_DOWN = (OperationalError, InterfaceError)


def server_error_or_unavailable(request, *args, **kwargs):
    """handler500: a database outage (from a page, or from middleware before the API's own
    error mapping runs) becomes a 503 the client can retry; anything else stays a 500."""
    if isinstance(sys.exc_info()[1], DATABASE_DOWN):
        response = JsonResponse(
            {"detail": "The database is unavailable; retry shortly."}, status=503
        )
        response["Retry-After"] = "2"
        return response
    return server_error(request, *args, **kwargs)
