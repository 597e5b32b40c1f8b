"""Training API: start rounds, follow runs. Training is for staff; its status, as the
annotator's page shows it, is for members too."""

from pathlib import Path

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import require_permission
from core.api.serializers import ErrorSerializer
from core.errors import NotFound
from labeling import selectors
from training import policy_export, services
from training import selectors as training_selectors
from training.api.serializers import RunSerializer, TrainingStatusSerializer
from training.models import Policy, Run


class RoundsView(APIView):
    @extend_schema(responses=RunSerializer(many=True))
    def get(self, request, slug: str):
        """The project's rounds, newest first, with their steps (staff with training.view_run)."""
        project = selectors.access_project_for(
            request.user, slug, permission="training.view_run", what="see training rounds"
        )
        rounds = Run.objects.filter(project=project, kind=Run.Kind.ROUND).prefetch_related("steps")
        return Response(RunSerializer(rounds[:50], many=True).data)

    @extend_schema(
        request=None,
        responses={202: RunSerializer, 400: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, slug: str):
        """Start a round of the loop (staff): fit the reward model, improve the policy,
        generate new comparisons. 409 while a round of this project is queued or running.
        Needs training.start_round."""
        project = selectors.access_project_for(
            request.user, slug, permission="training.start_round", what="start training rounds"
        )
        round_run = services.start_round(project=project, trigger="api")
        return Response(RunSerializer(round_run).data, status=status.HTTP_202_ACCEPTED)


class PolicyExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "weights",
                enum=list(policy_export.WEIGHTS),
                description=(
                    "Text projects with config.lora, whose versions store a LoRA adapter: "
                    "merged (the default), the adapter folded into the base, a plain model "
                    "directory; or adapter, the adapter alone (adapter_config.json, "
                    "adapter_model.safetensors and the tokenizer, which peft loads on the "
                    "base). A policy trained in full has only merged, its whole weights."
                ),
            )
        ],
        responses={
            (200, "application/octet-stream"): bytes,
            400: OpenApiResponse(
                ErrorSerializer,
                description="weights other than merged or adapter, or adapter for a policy "
                "trained in full.",
            ),
            404: ErrorSerializer,
        },
    )
    def get(self, request, policy_id: int):
        """Download a policy version's checkpoint (staff). For a text project it is a zip
        of a Hugging Face model directory (save_pretrained: config, weights, tokenizer), or
        of a LoRA adapter with ``weights=adapter``. Merging an adapter loads the model in
        this process; for a large one, ``manage.py export_policy`` on a worker does it."""
        policy = Policy.objects.filter(
            pk=policy_id, project__in=selectors.visible_projects(request.user)
        ).first()
        if policy is None or not request.user.is_staff or not policy.checkpoint:
            raise NotFound(f"No policy {policy_id} that you may export.")
        require_permission(request.user, "training.export_policy", "download policies")
        if not default_storage.exists(policy.checkpoint.name):
            raise NotFound(
                f"Policy {policy_id}'s checkpoint {policy.checkpoint.name} is missing from storage."
            )
        weights = policy_export.checked_weights(policy, request.query_params.get("weights"))
        suffix = Path(policy.checkpoint.name).suffix
        name = f"{policy.project.slug}-policy-v{policy.version}"
        if policy_export.needs_merge(policy, weights):
            archive = policy_export.merged_archive(policy)
            return FileResponse(archive, as_attachment=True, filename=f"{name}{suffix}")
        if weights == "adapter":
            name += "-adapter"
        return FileResponse(
            default_storage.open(policy.checkpoint.name, "rb"),
            as_attachment=True,
            filename=f"{name}{suffix}",
        )


class RunView(APIView):
    @extend_schema(responses=RunSerializer)
    def get(self, request, run_id: int):
        """A run's status, progress and metrics (staff)."""
        run = (
            Run.objects.filter(pk=run_id, project__in=selectors.visible_projects(request.user))
            .prefetch_related("steps")
            .first()
        )
        if run is None or not request.user.is_staff:
            raise NotFound(f"No run {run_id} that you may see.")
        require_permission(request.user, "training.view_run", "see training runs")
        return Response(RunSerializer(run).data)


class TrainingStatusView(APIView):
    @extend_schema(responses={200: TrainingStatusSerializer, 404: ErrorSerializer})
    def get(self, request, slug: str):
        """Whether the project trains and how its current round is doing (members and
        staff): what the annotator's page shows when nothing is left to judge."""
        project = selectors.access_project(request.user, slug)
        return Response(training_selectors.training_status(project))
