"""The webhooks API: staff register URLs that receive a project's events, signed, and read
how their deliveries went. The work is in labeling.webhooks."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.serializers import ErrorSerializer
from core.errors import NotFound
from labeling import selectors, webhooks
from labeling.models import Project, Webhook, WebhookDelivery

PERMISSION = "labeling.change_project"
DELIVERIES_SHOWN = 100  # the newest


class WebhookRequestSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=webhooks.MAX_URL_CHARS, help_text="http(s) URL.")
    events = serializers.ListField(
        child=serializers.CharField(max_length=50),
        max_length=20,
        help_text=f"Event names, from: {', '.join(webhooks.EVENTS)}.",
    )
    secret = serializers.CharField(
        required=False,
        max_length=200,
        help_text="whsec_ and the base64 of 24 to 64 random bytes; generated when left out.",
    )


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=webhooks.EVENTS))
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_by", "created_at"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Shown in this answer only: keep it to verify signatures."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "event_id",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "payload",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "finished_at",
        ]
        read_only_fields = fields


def _project(request, slug: str) -> Project:
    return selectors.access_project_for(
        request.user, slug, permission=PERMISSION, what="manage webhooks"
    )


def _webhook(project: Project, webhook_id: int) -> Webhook:
    webhook = Webhook.objects.filter(project=project, pk=webhook_id).first()
    if webhook is None:
        raise NotFound(f"No webhook {webhook_id} in project {project.slug!r}.")
    return webhook


class WebhookListView(APIView):
    @extend_schema(responses={200: WebhookSerializer(many=True), 403: ErrorSerializer})
    def get(self, request, slug: str):
        """The project's webhooks (staff with labeling.change_project); secrets not shown."""
        project = _project(request, slug)
        hooks = Webhook.objects.filter(project=project).select_related("created_by")
        return Response(WebhookSerializer(hooks.order_by("pk"), many=True).data)

    @extend_schema(
        request=WebhookRequestSerializer,
        responses={
            201: WebhookCreatedSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="The project has WEBHOOK_MAX_PER_PROJECT webhooks."
            ),
        },
    )
    def post(self, request, slug: str):
        """Register a webhook (staff with labeling.change_project): each event is POSTed to
        ``url`` signed as Standard Webhooks says (``webhook-id``, ``webhook-timestamp``,
        ``webhook-signature`` headers). The answer holds the secret, once."""
        project = _project(request, slug)
        serializer = WebhookRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = webhooks.create_webhook(
            project=project, created_by=request.user, **serializer.validated_data
        )
        return Response(WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted, with its deliveries' log."),
            403: ErrorSerializer,
            404: ErrorSerializer,
        }
    )
    def delete(self, request, slug: str, webhook_id: int):
        """Delete a webhook (staff with labeling.change_project); it is sent nothing more."""
        project = _project(request, slug)
        webhooks.delete_webhook(project=project, webhook_id=webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesView(APIView):
    @extend_schema(
        responses={
            200: WebhookDeliverySerializer(many=True),
            403: ErrorSerializer,
            404: ErrorSerializer,
        }
    )
    def get(self, request, slug: str, webhook_id: int):
        """The webhook's newest deliveries, newest first: status (pending, succeeded,
        failed), attempts, the last status code and error (staff with
        labeling.change_project)."""
        webhook = _webhook(_project(request, slug), webhook_id)
        deliveries = webhook.deliveries.order_by("-pk")[:DELIVERIES_SHOWN]
        return Response(WebhookDeliverySerializer(deliveries, many=True).data)
