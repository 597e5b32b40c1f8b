"""The export and stats endpoints (staff): judgements as JSONL, Parquet or a segments zip."""

from __future__ import annotations

import json
import tempfile

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.serializers import ErrorSerializer
from core.errors import InvalidField
from labeling import exports, parquet, selectors, stats
from labeling.api import stats_serializers

SPOOL_BYTES = 16 * 1024 * 1024  # a bigger zip or Parquet file is built on disk
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


class ExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                enum=["trl", "kto", "full", "segments"],
                description=(
                    "Text projects: trl (the default), {prompt, chosen, rejected} per "
                    "preferred pair (a conversational project: TRL's conversational format, "
                    "message lists); kto, {prompt, completion, label} per completion judged "
                    "desirable or not; or full, one line per judgement with every field. "
                    "Trajectory projects: full (the default), one line per judgement with "
                    "each segment's episode_seed, start, policy_version, true_return, "
                    "segment_url and clip_url; or segments, a zip of items/<id>.npz "
                    "(observations, actions, true_rewards), items.jsonl, pairs.jsonl "
                    "({a, b, p, annotator}) and README.txt."
                ),
            ),
            OpenApiParameter(
                "file",
                enum=list(exports.EXPORT_FILES),
                description=(
                    "jsonl (the default) or parquet, the same rows as an Apache Parquet file "
                    'that datasets.load_dataset("parquet", data_files=...) reads; not '
                    "with format=segments."
                ),
            ),
        ],
        responses={
            (200, "application/jsonl"): OpenApiTypes.STR,
            (200, PARQUET_CONTENT_TYPE): OpenApiTypes.BINARY,
            (200, "application/zip"): OpenApiTypes.BINARY,
            400: OpenApiResponse(
                ErrorSerializer,
                description="A format that does not fit the project's kind, or a bad file.",
            ),
        },
    )
    def get(self, request, slug: str):
        """Download the project's judgements (staff): JSONL or Parquet, or for
        ``format=segments`` a zip loadable with numpy alone (its README.txt says what each
        file holds). Needs labeling.export_judgements."""
        project = selectors.access_project_for(
            request.user, slug, permission="labeling.export_judgements", what="export judgements"
        )
        fits = exports.EXPORT_FORMATS[project.kind]
        kind = request.query_params.get("format", fits[0])
        if kind not in fits:
            elsewhere = [k for k, formats in exports.EXPORT_FORMATS.items() if kind in formats]
            hint = f" ({kind} is for {' and '.join(elsewhere)} projects)" if elsewhere else ""
            raise InvalidField(
                "format",
                f"must be {_one_of(fits)} for a {project.kind} project; got {kind!r}{hint}",
            )
        file = request.query_params.get("file")
        if kind == "segments":
            if file is not None:
                raise InvalidField(
                    "file", f"format=segments is a zip; leave file out, got {file!r}"
                )
            return _segments_zip(project)
        if file is not None and file not in exports.EXPORT_FILES:
            raise InvalidField("file", f"must be {_one_of(exports.EXPORT_FILES)}; got {file!r}")
        if kind == "full":
            rows = exports.export_full(project, absolute_url=request.build_absolute_uri)
        elif kind == "kto":
            rows = exports.export_kto(project)
        else:
            rows = exports.export_trl(project)
        if file == "parquet":
            return _parquet(project, kind, rows)
        response = StreamingHttpResponse(
            (json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
            content_type="application/jsonl",
        )
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{kind}.jsonl"'
        return response


def _one_of(names) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _segments_zip(project) -> FileResponse:
    """The segments zip, built in a spooled file (memory, then disk) and sent from it."""
    archive = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        exports.export_segments(project, archive)
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


def _parquet(project, kind: str, rows) -> FileResponse:
    """``rows`` as a Parquet file, written in row groups to a spooled file (memory, then
    disk) and sent from it."""
    columns = parquet.schema(project, kind)
    into = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        parquet.write_parquet(rows, columns, into)
    except BaseException:
        into.close()
        raise
    into.seek(0)
    return FileResponse(
        into,
        as_attachment=True,
        filename=f"{project.slug}-{kind}.parquet",
        content_type=PARQUET_CONTENT_TYPE,
    )


class StatsView(APIView):
    @extend_schema(responses=stats_serializers.StatsSerializer)
    def get(self, request, slug: str):
        """Counts, agreement with the majority, gold accuracy and agreement between
        annotators (Cohen's, Fleiss' κ, Krippendorff's α with intervals). Staff with
        labeling.view_judgement see every annotator and each pair's κ; an annotator sees
        only their own figures, without gold ones."""
        project = selectors.access_project(request.user, slug)
        return Response(stats.project_stats(project, for_user=request.user))
