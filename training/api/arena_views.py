"""Arena API: staff start blind evaluations between policy versions and read their
leaderboards. The work is in training.arena (writes) and training.arena_selectors (reads)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.serializers import ErrorSerializer
from core.errors import NotFound
from labeling import selectors
from labeling.models import Project
from training import arena as arena_service
from training import arena_selectors
from training.models import Arena

LISTED = 50  # the newest arenas


class ArenaRequestSerializer(serializers.Serializer):
    versions = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        min_length=2,
        max_length=arena_service.MAX_VERSIONS,
        help_text="Policy version numbers of this project (Policy.version, 0 being the "
        "initial policy), each once: at least 2.",
    )
    comparisons = serializers.IntegerField(
        min_value=1,
        max_value=arena_service.MAX_COMPARISONS,
        help_text="Comparisons to make: at least one per pair of versions, at most "
        f"{arena_service.MAX_COMPARISONS}.",
    )


class ArenaSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    versions = serializers.ListField(child=serializers.IntegerField())
    # A plain string: an enum would collide with the other "status" enums' schema name.
    status = serializers.CharField(
        read_only=True, help_text=f"One of {', '.join(Arena.Status.values)}."
    )

    class Meta:
        model = Arena
        fields = [
            "id",
            "project",
            "versions",
            "comparisons",
            "status",
            "progress",
            "error",
            "attempts",
            "created_by",
            "created_at",
            "started_at",
            "sampled_at",
            "finished_at",
        ]
        read_only_fields = fields


class LeaderboardRowSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    score = serializers.FloatField(
        allow_null=True, help_text="Log-strength θ (Bradley-Terry), mean 0 over the versions."
    )
    ci_low = serializers.FloatField(allow_null=True, help_text="95% bootstrap interval.")
    ci_high = serializers.FloatField(allow_null=True)
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()


class PairwiseSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The better-scored version of the pair.")
    other = serializers.IntegerField()
    difference = serializers.FloatField(allow_null=True, help_text="θ_version − θ_other.")
    ci_low = serializers.FloatField(allow_null=True, help_text="95% bootstrap interval.")
    ci_high = serializers.FloatField(allow_null=True)
    better = serializers.BooleanField(
        allow_null=True, help_text="True when the interval lies above 0; null: can't tell."
    )


class JudgingSerializer(serializers.Serializer):
    comparisons = serializers.IntegerField(help_text="Comparisons made.")
    complete = serializers.IntegerField(help_text="Those with the project's overlap judged.")


class ArenaDetailSerializer(ArenaSerializer):
    judging = JudgingSerializer(read_only=True)
    leaderboard = LeaderboardRowSerializer(many=True, read_only=True)
    pairwise = PairwiseSerializer(many=True, read_only=True)
    tie_strength = serializers.FloatField(
        allow_null=True, read_only=True, help_text="Davidson's ν: how readily pairs tie."
    )
    judgements = serializers.IntegerField(read_only=True, help_text="Judgements fitted.")

    class Meta(ArenaSerializer.Meta):
        fields = [
            *ArenaSerializer.Meta.fields,
            "judging",
            "leaderboard",
            "pairwise",
            "tie_strength",
            "judgements",
        ]
        read_only_fields = fields


def _readable_project(request, slug: str) -> Project:
    return selectors.access_project_for(
        request.user, slug, permission="training.view_arena", what="see arenas"
    )


class ArenasView(APIView):
    @extend_schema(responses={200: ArenaSerializer(many=True), 403: ErrorSerializer})
    def get(self, request, slug: str):
        """The project's arenas, newest first (staff with training.view_arena)."""
        project = _readable_project(request, slug)
        arenas = Arena.objects.filter(project=project).select_related("project", "created_by")
        return Response(ArenaSerializer(arenas[:LISTED], many=True).data)

    @extend_schema(
        request=ArenaRequestSerializer,
        responses={202: ArenaSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request, slug: str):
        """Start a blind evaluation between policy versions of this project (staff with
        training.start_arena). ``versions`` are policy version numbers (Policy.version of
        this project, as the dashboard and rounds name them; 0 is the initial policy), at
        least two, each once; ``comparisons`` is how many comparisons to make, each between
        two of them (every pair equally often): at least one per pair, at most 1000. A
        worker samples from each version (a segment each from one seed for trajectory
        projects, a response each to one prompt for text ones) and queues ordinary
        comparisons, which never say which version made what. 202 with the arena; follow
        it at ``/api/projects/{slug}/arena/{id}/``. 400 naming a bad value."""
        project = selectors.access_project_for(
            request.user, slug, permission="training.start_arena", what="start arenas"
        )
        body = request.data if isinstance(request.data, dict) else {}
        arena = arena_service.start_arena(
            project=project,
            versions=body.get("versions"),
            comparisons=body.get("comparisons"),
            created_by=request.user,
        )
        headers = {"Location": f"/api/projects/{project.slug}/arena/{arena.pk}/"}
        return Response(
            ArenaSerializer(arena).data, status=status.HTTP_202_ACCEPTED, headers=headers
        )


class ArenaView(APIView):
    @extend_schema(
        responses={200: ArenaDetailSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
    )
    def get(self, request, slug: str, arena_id: int):
        """An arena's status, sampling progress, how far judging is, and its leaderboard
        (staff with training.view_arena): per version its Bradley-Terry score (log-strength,
        mean 0; ties by Davidson's model) with a 95% bootstrap interval over comparisons,
        and wins, losses and ties; per pair of versions the difference of their scores and
        its interval (``better``: the interval excludes 0). A finished arena shows the
        leaderboard as it stood when it finished."""
        project = _readable_project(request, slug)
        arena = (
            Arena.objects.filter(project=project, pk=arena_id)
            .select_related("project", "created_by")
            .first()
        )
        if arena is None:
            raise NotFound(f"No arena {arena_id} in project {project.slug!r}.")
        arena_service.finish_if_judged(arena)
        body = {
            **ArenaSerializer(arena).data,
            "judging": arena_selectors.judging_progress(arena),
            **arena_selectors.results_of(arena),
        }
        return Response(body)
