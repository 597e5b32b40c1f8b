"""The login page, with failed attempts throttled per client address."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.shortcuts import render

from core.clients import client_address


class ThrottledLoginView(auth_views.LoginView):
    """Django's LoginView; after LOGIN_FAILURES_PER_MINUTE failed attempts from one
    address in a minute, answers 429 until the minute is over. Counters live in the
    cache (per process with the default local-memory cache)."""

    def _key(self) -> str:
        return f"login-failures:{client_address(self.request)}"

    def post(self, request, *args, **kwargs):
        if cache.get(self._key(), 0) >= settings.LOGIN_FAILURES_PER_MINUTE:
            response = render(request, "registration/throttled.html", status=429)
            response["Retry-After"] = "60"
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        key = self._key()
        cache.add(key, 0, timeout=60)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=60)
        return super().form_invalid(form)
