"""The annotator's pages. The page is a shell; its script talks to the JSON API."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from labeling import selectors
from labeling.errors import DomainError


@login_required
def home(request):
    projects = selectors.visible_projects(request.user).order_by("slug")
    rows = [
        {"project": p, "progress": selectors.annotator_progress(request.user, p)} for p in projects
    ]
    return render(request, "labeling/home.html", {"rows": rows})


@login_required
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
