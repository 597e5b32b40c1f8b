"""The annotator's pages. The page is a shell; its script talks to the JSON API."""

import mimetypes

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.db.models import Q
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from core.api.permissions import may
from core.decorators import login_or_token_required
from core.errors import DomainError
from core.ranges import ranged_file_response
from labeling import selectors
from labeling.config import revise_window_s
from labeling.feedback import PARTS, form_of
from labeling.models import Item


@login_required
def home(request):
    projects = selectors.visible_projects(request.user).order_by("slug")
    rows = [
        {"project": p, "progress": selectors.annotator_progress(request.user, p)} for p in projects
    ]
    return render(request, "labeling/home.html", {"rows": rows})


@login_required
@ensure_csrf_cookie  # the page's script posts judgements with the csrftoken cookie
def annotate(request, slug: str):
    try:
        project = selectors.access_project(request.user, slug)
    except DomainError:
        raise Http404(f"No project {slug!r} that you are a member of.") from None
    form = form_of(project.config)
    return render(
        request,
        "labeling/annotate.html",
        {
            "project": project,
            "is_member": selectors.is_member(request.user, project),
            "revise_window_s": revise_window_s(project.kind, project.config),
            # the help lists the keys of the parts this project's feedback form asks for
            "feedback": form,
            "holds": any(part in form for part in PARTS),
        },
    )


@login_or_token_required  # scripts fetch an export's segment_url and clip_url with a token
def protected_media(request, path: str):
    """A clip or poster, for users who may see the project it belongs to; a segment file
    (payload) for staff only, since it holds the true rewards. Media go through this view
    (not a bare file server) so annotators see only their own projects' files."""
    visible = selectors.visible_projects(request.user)
    files = Q(clip=path) | Q(poster=path)
    if may(request.user, "labeling.view_item"):
        files |= Q(payload=path)
    if not Item.objects.filter(files, project__in=visible).exists():
        raise Http404("No such file in a project you are a member of.")
    if not default_storage.exists(path):
        raise Http404("The file is missing from storage.")
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    # Byte ranges: the annotator's page seeks in clips (sync, scrub), which needs them.
    response = ranged_file_response(
        request, storage=default_storage, path=path, content_type=content_type
    )
    response["Cache-Control"] = "private, max-age=3600"  # a stored file never changes
    return response
