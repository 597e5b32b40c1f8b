"""Who is asking, as far as an address can tell."""

from __future__ import annotations

from django.conf import settings


def client_address(request) -> str:
    """The client's address: the connection's, or with NUM_PROXIES proxies in front the
    one the outermost of them saw (X-Forwarded-For entries before it are the client's own
    claims and are not trusted). DRF's throttles use the same rule (NUM_PROXIES)."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if settings.NUM_PROXIES == 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",")]
    return hops[-min(settings.NUM_PROXIES, len(hops))]
