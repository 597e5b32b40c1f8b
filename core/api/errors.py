"""One place that turns errors into HTTP answers: domain errors keep their status,
database outages become 503 with Retry-After, and nothing else leaks as a bare 500."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError, ImportRejected, InvalidField
from core.outage import DATABASE_DOWN

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    if isinstance(exc, (InvalidField, ImportRejected)) and exc.field:
        return Response({"detail": exc.message, "field": exc.field}, status=exc.status_code)
    if isinstance(exc, DomainError):
        return Response({"detail": exc.message}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, DATABASE_DOWN):
        logger.warning("database unavailable: %s", exc)
        return Response(
            {"detail": "The database is unavailable; retry shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "2"},
        )
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
    return drf_exception_handler(exc, context)
