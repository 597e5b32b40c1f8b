"""The import endpoints: a JSONL upload, run in the request or as a job, and the job's state."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, UnsupportedMediaType
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import require_permission
from core.api.serializers import ErrorSerializer
from core.errors import ImportTooLarge, InvalidInput
from labeling import import_jobs, selectors
from labeling.api import serializers as s
from labeling.models import ImportJob


class JSONLinesParser(BaseParser):
    """Hands the raw body to the view: JSONL is parsed, line by line, by the import service."""

    media_type = "application/jsonl"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read(settings.IMPORT_MAX_BYTES + 1) if stream is not None else b""


class NDJSONParser(JSONLinesParser):
    media_type = "application/x-ndjson"


class PlainTextParser(JSONLinesParser):
    media_type = "text/plain"


class OctetStreamParser(JSONLinesParser):
    media_type = "application/octet-stream"


def _declared_length(request) -> int:
    """The body size the client declared; 0 when it declared none, or nonsense (the body
    is then read up to the limit and measured)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class ImportView(APIView):
    parser_classes = [
        JSONLinesParser,
        NDJSONParser,
        PlainTextParser,
        OctetStreamParser,
        MultiPartParser,
    ]

    def handle_exception(self, exc):
        if isinstance(exc, UnsupportedMediaType):  # curl --data-binary sends a form type
            exc = UnsupportedMediaType(self.request.content_type, self._unsupported_message())
        return super().handle_exception(exc)

    def _unsupported_message(self) -> str:
        body_types = [p.media_type for p in self.parser_classes if p is not MultiPartParser]
        return (
            f"Unsupported media type {self.request.content_type!r}. Send the JSONL file as "
            f"the request body with Content-Type {', '.join(body_types)}, or as the field "
            "'file' of a multipart/form-data upload. With curl: --data-binary @file.jsonl "
            "-H 'Content-Type: application/jsonl' (or -F file=@file.jsonl)."
        )

    @extend_schema(
        request={
            "application/jsonl": OpenApiTypes.BINARY,
            "application/x-ndjson": OpenApiTypes.BINARY,
            "text/plain": OpenApiTypes.BINARY,
            "application/octet-stream": OpenApiTypes.BINARY,
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            },
        },
        responses={
            201: s.ImportResponseSerializer,
            200: OpenApiResponse(
                s.ImportResponseSerializer,
                description="Every line was imported before; or a retry with the same "
                "Idempotency-Key (then the first request's answer, or its job).",
            ),
            202: OpenApiResponse(
                s.ImportJobSerializer,
                description="A file over IMPORT_SYNC_MAX_BYTES: queued for a worker; "
                "follow it at GET /api/imports/{id}/.",
            ),
            400: ErrorSerializer,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
    )
    def post(self, request, slug: str):
        """Import JSONL (staff): one ``{"prompt", "responses": [...]}`` or
        ``{"prompt", "chosen", "rejected"}`` object per line, each part a text or, for a
        conversation, a list of chat messages ``{"role", "content"}`` (a bad message is a
        400 whose ``field`` names it, ``prompt[1].role`` say). All lines or none are stored;
        a line already in the project (the same content) is skipped and counted in
        ``skipped_duplicates``, so importing a file twice stores it once. A file over
        IMPORT_SYNC_MAX_BYTES is imported by a worker (202 with its job). With an
        ``Idempotency-Key`` header, a retry gets the first request's answer, unread.
        Needs labeling.import_items."""
        project = selectors.access_project_for(
            request.user, slug, permission="labeling.import_items", what="import items"
        )
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise InvalidInput("Idempotency-Key must be at most 200 characters.")
        if job := import_jobs.existing_job(project=project, importer=request.user, key=key):
            return _job_answer(job, retry=True)
        length = _declared_length(request)
        if length > settings.IMPORT_MAX_BYTES:
            raise ImportTooLarge(
                f"The upload is {length} bytes; the limit is {settings.IMPORT_MAX_BYTES} bytes."
            )
        if request.content_type.startswith("multipart/"):
            upload = request.data.get("file")
            if upload is None:
                raise InvalidInput("Send the JSONL as the request body, or as a form field 'file'.")
            large, chunks = upload.size > settings.IMPORT_SYNC_MAX_BYTES, upload.chunks()
        elif length > settings.IMPORT_SYNC_MAX_BYTES:  # streamed to storage, not parsed here
            large, chunks = True, _body_chunks(request)
        else:  # DRF hands an empty body over as an empty dict, not as b""
            body = request.data if isinstance(request.data, bytes) else b""
            large, chunks = len(body) > settings.IMPORT_SYNC_MAX_BYTES, [body]
        if large:
            job = import_jobs.import_later(
                project=project, importer=request.user, chunks=chunks, key=key
            )
        else:
            data = b"".join(chunks)[: settings.IMPORT_MAX_BYTES + 1]
            job = import_jobs.import_now(project=project, importer=request.user, data=data, key=key)
        return _job_answer(job, retry=False)


def _body_chunks(request, size: int = 64 * 1024):
    while chunk := request.stream.read(size):
        yield chunk


def _job_answer(job, *, retry: bool) -> Response:
    """A finished job answers as the import did (201 when it stored something); a queued or
    running one (a large file) with the job, 202 and where to follow it."""
    if job.status != job.Status.SUCCEEDED:
        waiting = job.status in (job.Status.QUEUED, job.Status.RUNNING)
        code = status.HTTP_202_ACCEPTED if waiting else status.HTTP_200_OK
        response = Response(s.ImportJobSerializer(job).data, status=code)
        response["Location"] = f"/api/imports/{job.pk}/"
        return response
    created = job.result.get("created_comparisons", 0) > 0 and not retry
    body = {"job": job.pk, **job.result}
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ImportJobView(APIView):
    @extend_schema(
        responses={200: s.ImportJobSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
    )
    def get(self, request, job_id: int):
        """An import's status, progress (the share of lines read) and result (staff)."""
        require_permission(request.user, "labeling.import_items", "follow imports")
        job = ImportJob.objects.select_related("project").filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"No import job {job_id}.")
        return Response(s.ImportJobSerializer(job).data)
