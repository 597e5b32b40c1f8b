"""The site's Content-Security-Policy header, built once (core/csp.py), is the one
django-csp builds; responses with a policy of their own still get theirs."""

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE, NONE, SELF
from csp.decorators import csp_exempt, csp_update
from csp.utils import build_policy
from django.http import HttpResponse
from django.test import RequestFactory

from core.csp import CSPMiddleware


def _through_middleware(view, path="/somewhere/"):
    request = RequestFactory().get(path)
    middleware = CSPMiddleware(view)
    return middleware(request)


def test_a_plain_response_gets_the_policy_django_csp_builds_for_the_settings():
    response = _through_middleware(lambda request: HttpResponse("ok"))
    assert response[HEADER] == build_policy()
    assert "default-src 'self'" in response[HEADER] and "frame-ancestors 'none'" in response[HEADER]
    assert HEADER_REPORT_ONLY not in response


def test_a_changed_setting_changes_the_header(settings):
    _through_middleware(lambda request: HttpResponse("ok"))  # built and cached
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": [NONE]}}
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": [SELF]}}
    response = _through_middleware(lambda request: HttpResponse("ok"))
    assert response[HEADER] == "default-src 'none'"
    assert response[HEADER_REPORT_ONLY] == "default-src 'self'"


def test_a_response_with_its_own_policy_or_a_nonce_is_built_by_django_csp(settings):
    updated = _through_middleware(
        csp_update({"img-src": ["https://img.example"]})(lambda request: HttpResponse("ok"))
    )
    assert "https://img.example" in updated[HEADER]
    assert updated[HEADER] != build_policy()

    def uses_nonce(request):
        return HttpResponse(str(request.csp_nonce))

    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": [SELF, NONCE]}}
    assert "script-src 'self'" in _through_middleware(lambda request: HttpResponse("ok"))[HEADER]
    with_nonce = _through_middleware(uses_nonce)
    assert f"'nonce-{with_nonce.content.decode()}'" in with_nonce[HEADER]

    exempt = _through_middleware(csp_exempt()(lambda request: HttpResponse("ok")))
    assert HEADER not in exempt


def test_a_nonce_asked_for_after_the_header_is_written_is_an_error():
    from csp.exceptions import CSPNonceError

    request = RequestFactory().get("/")
    CSPMiddleware(lambda r: HttpResponse("ok"))(request)
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)


@pytest.mark.django_db
def test_api_answers_carry_it(make_user, api_client_for):
    client = api_client_for(make_user())
    assert client.get("/api/projects/")[HEADER] == build_policy()
