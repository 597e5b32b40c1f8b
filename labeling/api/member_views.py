"""A project's members: adding annotators, listing them with their qualification, and
staff's qualification override."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.serializers import ErrorSerializer
from core.errors import NotFound
from labeling import qualification, selectors, services
from labeling.api import serializers as s
from labeling.models import Membership


class MemberRowSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    qualification = serializers.CharField(
        help_text="pending, passed, failed, waived or blocked (used only when the project "
        "has a qualification)"
    )
    qualification_accuracy = serializers.FloatField(allow_null=True)
    joined_at = serializers.DateTimeField(source="created_at")


class QualificationSerializer(serializers.Serializer):
    qualification = serializers.ChoiceField(
        choices=[Membership.Qualification.WAIVED, Membership.Qualification.BLOCKED,
                 Membership.Qualification.PENDING],
        help_text="waived: qualified whatever the score; blocked: no more comparisons and "
        "no training; pending: decided again from the member's gold answers",
    )  # fmt: skip


class MembersView(APIView):
    @extend_schema(responses={200: MemberRowSerializer(many=True), 403: ErrorSerializer})
    def get(self, request, slug: str):
        """The project's members with where they stand on its qualification (staff with
        labeling.view_membership)."""
        project = selectors.access_project_for(
            request.user, slug, permission="labeling.view_membership", what="list members"
        )
        rows = Membership.objects.filter(project=project).select_related("user")
        return Response(MemberRowSerializer(rows.order_by("user__username"), many=True).data)

    @extend_schema(
        request=s.MemberSerializer,
        responses={201: s.MemberResponseSerializer, 200: s.MemberResponseSerializer},
    )
    def post(self, request, slug: str):
        """Make a user an annotator of this project (staff with labeling.manage_members).
        Adding twice is a no-op."""
        project = selectors.access_project_for(
            request.user, slug, permission="labeling.manage_members", what="add annotators"
        )
        serializer = s.MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["username"]
        created = not selectors.is_member(user, project)
        services.add_member(project=project, user=user)
        body = {"username": user.get_username(), "project": project.slug, "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MemberView(APIView):
    @extend_schema(
        request=QualificationSerializer,
        responses={200: MemberRowSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def patch(self, request, slug: str, username: str):
        """Override a member's qualification (staff with labeling.manage_members)."""
        project = selectors.access_project_for(
            request.user, slug, permission="labeling.manage_members", what="change members"
        )
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not selectors.is_member(user, project):
            raise NotFound(f"{username!r} is not a member of project {project.slug!r}.")
        serializer = QualificationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = qualification.set_qualification(
            project=project, user=user, status=serializer.validated_data["qualification"]
        )
        return Response(MemberRowSerializer(membership).data)
