"""View decorators for the site's HTML pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import AuthenticationFailed

from core.api.authentication import TokenAuthentication
from core.api.permissions import may


def staff_required(what: str, *, permission: str) -> Callable:
    """A page for staff with ``permission`` ("training.view_run"). An anonymous visitor is
    sent to the site's login (settings.LOGIN_URL) and back; a logged-in user who is not
    staff, or lacks the permission, gets a 403 page saying that ``what`` ("The project
    dashboard") is for staff, rather than the admin's login."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not may(request.user, permission):
                context = {"what": what, "permission": permission}
                return render(request, "core/staff_required.html", context, status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def login_or_token_required(view: Callable) -> Callable:
    """A page a script may fetch too: the signed-in session's user, else the user of an
    ``Authorization: Token <key>`` header (401 for a bad token); an anonymous browser is
    sent to the login page."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            try:
                found = TokenAuthentication().authenticate(request)  # reads only the header
            except AuthenticationFailed as exc:
                return HttpResponse(str(exc.detail), status=401, content_type="text/plain")
            if found is None:
                return redirect_to_login(request.get_full_path())
            request.user = found[0]
        return view(request, *args, **kwargs)

    return wrapped
