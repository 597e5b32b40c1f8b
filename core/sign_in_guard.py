"""Failed sign-ins (the login form and the token exchange), counted in the shared cache
per client address and per account; successful ones are never counted, so a hundred
annotators signing in from one office address all get in.

- Per address: LOGIN_FAILURES_PER_MINUTE failures in a minute, and the address waits for
  the minute to end.
- Per account: ACCOUNT_FAILURES_PER_HOUR failures in an hour, from any addresses (guesses
  spread over many), and the account refuses sign-ins for the rest of the hour, except
  from a browser it has signed in from before: that browser carries a signed cookie
  naming the account (a "device cookie", as OWASP describes it), so its owner still gets
  in, from whatever address, while the guesses are refused.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from core.clients import client_address

ADDRESS_WINDOW_S = 60
ACCOUNT_WINDOW_S = 60 * 60
DEVICE_COOKIE = "signin_device"
DEVICE_COOKIE_SALT = "core.sign_in_guard.device"
DEVICE_COOKIE_MAX_AGE_S = 180 * 24 * 60 * 60
DEVICE_ACCOUNTS_KEPT = 5  # accounts one browser is trusted for


def refusal(request: HttpRequest, username: str) -> tuple[str, int] | None:
    """Why this sign-in is refused, and for how many seconds; None when it may go on."""
    if _count(_address_key(request)) >= settings.LOGIN_FAILURES_PER_MINUTE:
        return "Too many failed sign-ins from your address. Wait a minute, then try again.", (
            ADDRESS_WINDOW_S
        )
    if _count(
        _account_key(username)
    ) >= settings.ACCOUNT_FAILURES_PER_HOUR and username not in trusted_accounts(request):
        return (
            "Too many failed sign-ins for this account. Sign in from a browser you have "
            "used for it before, or wait an hour.",
            ACCOUNT_WINDOW_S,
        )
    return None


def record_failure(request: HttpRequest, username: str) -> None:
    _increment(_address_key(request), ADDRESS_WINDOW_S)
    if username:
        _increment(_account_key(username), ACCOUNT_WINDOW_S)


def trust_this_browser(request: HttpRequest, response: HttpResponse, username: str) -> None:
    """After a successful sign-in: remember, in a signed cookie, that this browser may sign
    in to ``username`` even while guesses at it are refused."""
    accounts = [name for name in trusted_accounts(request) if name != username]
    accounts = [username, *accounts][:DEVICE_ACCOUNTS_KEPT]
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(accounts, salt=DEVICE_COOKIE_SALT),
        max_age=DEVICE_COOKIE_MAX_AGE_S,
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Lax",
    )


def trusted_accounts(request: HttpRequest) -> list[str]:
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        accounts = signing.loads(raw, salt=DEVICE_COOKIE_SALT, max_age=DEVICE_COOKIE_MAX_AGE_S)
    except signing.BadSignature:
        return []
    return (
        [name for name in accounts if isinstance(name, str)] if isinstance(accounts, list) else []
    )


def _address_key(request: HttpRequest) -> str:
    return f"signin-failures:address:{client_address(request)}"


def _account_key(username: str) -> str:
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"signin-failures:account:{digest}"


def _count(key: str) -> int:
    return int(cache.get(key, 0))


def _increment(key: str, timeout: int) -> None:
    cache.add(key, 0, timeout=timeout)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
