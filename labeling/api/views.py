"""The labeling API. Views parse, call a service or selector, and serialize; errors are
mapped to HTTP answers in core.api.errors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import require_permission
from core.api.serializers import ErrorSerializer
from core.errors import InvalidInput
from labeling import feedback, selectors, services
from labeling.api import serializers as s


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


def assignment_body(user, project, lease) -> dict:
    """The AssignmentSerializer shape, built directly (this is every annotator's hot path)."""
    items, progress = selectors.lease_view(user, project, lease)
    prompt = items[0].prompt if items[0].prompt_messages is None else items[0].prompt_messages
    return {
        "id": lease.comparison_id,
        "project": project.slug,
        "prompt": prompt,
        "items": [s.ShownItemSerializer().to_representation(item) for item in items],
        "lease_expires_at": lease.expires_at,
        "progress": progress,
        "feedback": feedback.form_of(project.config),
        "criteria": [name for name, _ in feedback.criteria_of(project.config)],
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
        "strength": judgement.strength,
        "ratings": judgement.ratings,
        "critique": judgement.critique,
        "edit": _edited(judgement),
        "created_at": judgement.created_at,
        "revised_at": judgement.revised_at,
    }


def _edited(judgement) -> dict | None:
    """The judgement's edit of the winner as {"id", "text"}; None when it has none."""
    if judgement.edit_id is None:
        return None
    return {"id": judgement.edit_id, "text": judgement.edit.text}


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
        were shown to you. ``strength``, ``ratings``, ``critique`` and ``edit`` are the
        feedback the project's form asks for (the ``feedback`` of next): a part it does not
        ask for, a required part missing or a bad value is a 400 whose ``field`` names it.
        An identical repeat returns 200 with the stored judgement; a different one is 409.
        With ``"next": true`` the answer also carries your next comparison."""
        serializer = s.AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.record_judgement(
            annotator=request.user, comparison=comparison_id, **_answer(serializer, request)
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
        serializer = s.AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.revise_judgement(
            annotator=request.user, comparison=comparison_id, **_answer(serializer, request)
        )
        body = _with_next(request, serializer, judgement_body(result.judgement), result.project)
        return Response(body)


def _answer(serializer, request) -> dict:
    """The answer a request carries, as record_judgement and revise_judgement take it: what
    the AnswerSerializer checked, and the feedback parts as sent (the services check them)."""
    answer = {
        name: serializer.validated_data.get(name)
        for name in ("choice", "ranking", "time_spent_ms", "shown_order")
    }
    return {**answer, **{part: request.data.get(part) for part in s.FEEDBACK_PARTS}}


def _with_next(request, serializer, body: dict, project) -> dict:
    """``body``, with the caller's next comparison as ``next`` when the request asked."""
    if serializer.validated_data["next"]:
        lease = services.assign_next_comparison(annotator=request.user, project=project)
        body["next"] = None if lease is None else assignment_body(request.user, project, lease)
    return body
