"""The labeling API. Views parse, call a service or selector, and serialize; errors are
mapped to HTTP answers in core.api.errors."""

from __future__ import annotations

import json
import tempfile

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, UnsupportedMediaType
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import require_permission
from core.api.serializers import ErrorSerializer
from core.errors import ImportTooLarge, InvalidInput
from labeling import import_jobs, selectors, services, stats
from labeling.api import serializers as s
from labeling.models import ImportJob


class ProjectListView(APIView):
    @extend_schema(responses=s.ProjectSerializer(many=True))
    def get(self, request):
        """Projects you are a member of (staff: all projects)."""
        projects = selectors.visible_projects(request.user).order_by("slug")
        context = {"request": request}
        return Response(s.ProjectSerializer(projects, many=True, context=context).data)

    @extend_schema(
        request=s.ProjectSerializer,
        responses={201: s.ProjectSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request):
        """Create a project (staff)."""
        require_permission(request.user, "labeling.add_project", "create projects")
        serializer = s.ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if (
            selectors.visible_projects(request.user)
            .filter(slug=serializer.validated_data["slug"])
            .exists()
        ):
            raise InvalidInput(f"A project with slug {serializer.validated_data['slug']!r} exists.")
        project = services.create_project(**serializer.validated_data)
        body = s.ProjectSerializer(project, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


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
        ``{"prompt", "chosen", "rejected"}`` object per line. All lines or none are stored;
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


def assignment_body(user, project, lease) -> dict:
    """The AssignmentSerializer shape, built directly (this is every annotator's hot path)."""
    items, progress = selectors.lease_view(user, project, lease)
    return {
        "id": lease.comparison_id,
        "project": project.slug,
        "prompt": items[0].prompt,
        "items": [s.ShownItemSerializer().to_representation(item) for item in items],
        "lease_expires_at": lease.expires_at,
        "progress": progress,
    }


def judgement_body(judgement) -> dict:
    """The JudgementSerializer shape, built directly."""
    return {
        "id": judgement.pk,
        "comparison": judgement.comparison_id,
        "choice": judgement.choice,
        "ranking": judgement.ranking,
        "shown_order": judgement.shown_order,
        "time_spent_ms": judgement.time_spent_ms,
        "created_at": judgement.created_at,
        "revised_at": judgement.revised_at,
    }


class NextView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: s.AssignmentSerializer,
            204: OpenApiResponse(description="Nothing is left for you in this project."),
            403: ErrorSerializer,
            404: ErrorSerializer,
        },
    )
    def post(self, request, slug: str):
        """Lease the next comparison for you to judge (members). Asking again while you
        hold a lease returns the same one."""
        project = selectors.access_project(request.user, slug)
        lease = services.assign_next_comparison(annotator=request.user, project=project)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(assignment_body(request.user, project, lease))


class ProgressView(APIView):
    @extend_schema(responses=s.ProgressSerializer)
    def get(self, request, slug: str):
        """How many comparisons you have judged here and how many remain for you."""
        project = selectors.access_project(request.user, slug)
        return Response(selectors.annotator_progress(request.user, project))


class JudgementView(APIView):
    @extend_schema(
        request=s.JudgementRequestSerializer,
        responses={
            201: s.JudgementWithNextSerializer,
            200: s.JudgementWithNextSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def post(self, request, comparison_id: int):
        """Judge a comparison you hold a lease on. ``left``/``right`` mean the items as they
        were shown to you. An identical repeat returns 200 with the stored judgement. With
        ``"next": true`` the answer also carries your next comparison."""
        serializer = s.JudgementRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.record_judgement(
            annotator=request.user, comparison=comparison_id, **_answer(serializer)
        )
        body = _with_next(request, serializer, judgement_body(result.judgement), result.project)
        return Response(
            body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )

    @extend_schema(
        request=s.JudgementRequestSerializer,
        responses={
            200: s.JudgementWithNextSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def put(self, request, comparison_id: int):
        """Revise your judgement of a comparison: the same body as POST, answered against
        the order you first saw. Allowed within the project's ``revise_window_s`` seconds
        (config, default 600) of your first answer; after that 409 says so. 200 with the
        judgement as it now stands; the answer it replaced is kept in its history. An
        identical repeat changes nothing. 404 when you have not judged the comparison, 403
        for an imported judgement."""
        serializer = s.JudgementRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.revise_judgement(
            annotator=request.user, comparison=comparison_id, **_answer(serializer)
        )
        body = _with_next(request, serializer, judgement_body(result.judgement), result.project)
        return Response(body)


def _answer(serializer) -> dict:
    """The answer a JudgementRequestSerializer carries, as record_judgement and
    revise_judgement take it."""
    fields = ("choice", "ranking", "time_spent_ms", "shown_order")
    return {name: serializer.validated_data.get(name) for name in fields}


def _with_next(request, serializer, body: dict, project) -> dict:
    """``body``, with the caller's next comparison as ``next`` when the request asked."""
    if serializer.validated_data["next"]:
        lease = services.assign_next_comparison(annotator=request.user, project=project)
        body["next"] = None if lease is None else assignment_body(request.user, project, lease)
    return body


SEGMENTS_SPOOL_BYTES = 16 * 1024 * 1024  # a bigger segments zip is built on disk


class ExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                enum=["trl", "full", "segments"],
                description=(
                    "Text projects: trl (the default), {prompt, chosen, rejected} per "
                    "preferred pair; or full. Trajectory projects: full (the default), one "
                    "line per judgement with each segment's episode_seed, start, "
                    "policy_version, true_return, segment_url and clip_url; or segments, a "
                    "zip of items/<id>.npz (observations, actions, true_rewards), "
                    "items.jsonl, pairs.jsonl ({a, b, p, annotator}) and README.txt."
                ),
            )
        ],
        responses={
            (200, "application/jsonl"): OpenApiTypes.STR,
            (200, "application/zip"): OpenApiTypes.BINARY,
            400: OpenApiResponse(
                ErrorSerializer, description="A format that does not fit the project's kind."
            ),
        },
    )
    def get(self, request, slug: str):
        """Download the project's judgements (staff): JSONL, or for ``format=segments``
        a zip loadable with numpy alone (its README.txt says what each file holds).
        Needs labeling.export_judgements."""
        project = selectors.access_project_for(
            request.user, slug, permission="labeling.export_judgements", what="export judgements"
        )
        fits = selectors.EXPORT_FORMATS[project.kind]
        kind = request.query_params.get("format", fits[0])
        if kind not in fits:
            elsewhere = [k for k, formats in selectors.EXPORT_FORMATS.items() if kind in formats]
            hint = f" ({kind} is for {' and '.join(elsewhere)} projects)" if elsewhere else ""
            raise InvalidInput(
                f"format must be {' or '.join(fits)} for a {project.kind} project; "
                f"got {kind!r}{hint}."
            )
        if kind == "segments":
            return _segments_zip(project)
        if kind == "full":
            rows = selectors.export_full(project, absolute_url=request.build_absolute_uri)
        else:
            rows = selectors.export_trl(project)
        response = StreamingHttpResponse(
            (json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
            content_type="application/jsonl",
        )
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{kind}.jsonl"'
        return response


def _segments_zip(project) -> FileResponse:
    """The segments zip, built in a spooled file (memory, then disk) and sent from it."""
    archive = tempfile.SpooledTemporaryFile(max_size=SEGMENTS_SPOOL_BYTES)
    try:
        selectors.export_segments(project, archive)
    except BaseException:
        archive.close()
        raise
    archive.seek(0)
    return FileResponse(
        archive,
        as_attachment=True,
        filename=f"{project.slug}-segments.zip",
        content_type="application/zip",
    )


class StatsView(APIView):
    @extend_schema(responses=s.StatsSerializer)
    def get(self, request, slug: str):
        """Counts, agreement with the majority, gold accuracy and agreement between
        annotators (Cohen's, Fleiss' κ, Krippendorff's α with intervals). Staff with
        labeling.view_judgement see every annotator and each pair's κ; an annotator sees
        only their own figures, without gold ones."""
        project = selectors.access_project(request.user, slug)
        return Response(stats.project_stats(project, for_user=request.user))
