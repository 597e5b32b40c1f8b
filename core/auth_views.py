"""The login page, with failed sign-ins counted per address and per account
(core.sign_in_guard)."""

from django.contrib.auth import views as auth_views
from django.shortcuts import render

from core import sign_in_guard


class ThrottledLoginView(auth_views.LoginView):
    """Django's LoginView; a refused sign-in (see core.sign_in_guard) is a 429 page saying
    why, before the password is checked. A successful one marks this browser as trusted
    for the account."""

    def _username(self) -> str:
        return str(self.request.POST.get("username", ""))[:150]

    def post(self, request, *args, **kwargs):
        if refused := sign_in_guard.refusal(request, self._username()):
            reason, wait_s = refused
            response = render(
                request, "registration/throttled.html", {"reason": reason}, status=429
            )
            response["Retry-After"] = str(wait_s)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        sign_in_guard.record_failure(self.request, self._username())
        return super().form_invalid(form)

    def form_valid(self, form):
        response = super().form_valid(form)
        sign_in_guard.trust_this_browser(self.request, response, form.get_user().get_username())
        return response
