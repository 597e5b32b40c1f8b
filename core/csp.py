"""django-csp's middleware with the site's policy header built once.

Nearly every response (every API answer) carries the settings' policy unchanged, and
django-csp builds that header anew for each one (a deep copy of the directives and a join:
about 5% of an annotator's next + judgement cycle). Here a response without a policy of
its own (no csp decorator's config, update or replace) and a request that used no nonce
get the header built once per settings; anything else is left to django-csp itself.
"""

from __future__ import annotations

import http.client
from functools import cache

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as LibraryCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_OWN_POLICY = (  # what django-csp's decorators set on a response
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)
_HEADERS = (  # header, the exemption attribute, report only, the setting
    (HEADER, "_csp_exempt", False, "CONTENT_SECURITY_POLICY"),
    (HEADER_REPORT_ONLY, "_csp_exempt_ro", True, "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
)
_DEBUG_CODES = (http.client.INTERNAL_SERVER_ERROR, http.client.NOT_FOUND)


@cache
def _site_policy(report_only: bool) -> str:
    return build_policy(report_only=report_only)


@receiver(setting_changed)
def _forget_policy(*, setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _site_policy.cache_clear()


class CSPMiddleware(LibraryCSPMiddleware):
    def process_response(self, request, response):
        own = any(getattr(response, name, None) is not None for name in _OWN_POLICY)
        if own or getattr(request, "_csp_nonce", None) is not None:
            return super().process_response(request, response)
        if response.status_code in _DEBUG_CODES and settings.DEBUG:
            return response
        for header, exempt, report_only, setting in _HEADERS:
            policy = _site_policy(report_only)
            prefixes = tuple(
                (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
            )
            if (
                policy
                and header not in response
                and not getattr(response, exempt, False)
                and not request.path_info.startswith(prefixes)
            ):
                response[header] = policy
        # as django-csp does: a nonce asked for after the header is written is an error
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
