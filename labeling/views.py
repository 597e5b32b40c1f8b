"""The annotator's pages. The page is a shell; its script talks to the JSON API."""

import mimetypes

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from core.errors import DomainError
from labeling import selectors
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
    return render(
        request,
        "labeling/annotate.html",
        {"project": project, "is_member": selectors.is_member(request.user, project)},
    )


@login_required
def protected_media(request, path: str):
    """A clip or poster, for users who may see the project it belongs to. Media go through
    this view (not a bare file server) so annotators see only their own projects' files."""
    visible = selectors.visible_projects(request.user)
    if not Item.objects.filter(Q(clip=path) | Q(poster=path), project__in=visible).exists():
        raise Http404("No such file in a project you are a member of.")
    if not default_storage.exists(path):
        raise Http404("The file is missing from storage.")
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return FileResponse(default_storage.open(path, "rb"), content_type=content_type)
