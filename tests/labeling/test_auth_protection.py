"""Logins are throttled, session writes need CSRF, and the admin shows untrusted text as text."""

import pytest
from django.core.cache import cache
from django.test import Client

from labeling import services
from labeling.models import Item

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def test_repeated_failed_logins_are_answered_429_then_even_the_right_password_waits(
    db, make_user, settings, client
):
    settings.LOGIN_FAILURES_PER_MINUTE = 3
    make_user("ann", password="right")
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "ann", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    blocked = client.post("/accounts/login/", {"username": "ann", "password": "right"})
    assert blocked.status_code == 429 and blocked["Retry-After"] == "60"
    cache.clear()  # the minute is over
    assert (
        client.post("/accounts/login/", {"username": "ann", "password": "right"}).status_code == 302
    )


def test_a_session_authenticated_write_without_the_csrf_token_is_refused(
    db, make_user, make_project, make_comparison
):
    user = make_user("ann", password="pw")
    project = make_project("p", members=[user])
    make_comparison(project)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post(f"/api/projects/{project.slug}/next/")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get(f"/label/{project.slug}/")  # the page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    allowed = browser.post(f"/api/projects/{project.slug}/next/", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 200


def test_untrusted_text_is_escaped_in_the_admin(db, make_user, make_project, make_comparison):
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    project = make_project("p")
    comparison = make_comparison(project, texts=[XSS, "fine"])
    item = Item.objects.get(text=XSS)
    services.add_member(project=project, user=admin)
    client = Client()
    client.force_login(admin)
    for url, shows_text in (
        ("/admin/labeling/item/", True),
        (f"/admin/labeling/item/{item.pk}/change/", True),
        (f"/admin/labeling/comparison/{comparison.pk}/change/", False),
    ):
        page = client.get(url).content.decode()
        assert "<script>alert(2)</script>" not in page and "<img src=x" not in page, url
        if shows_text:
            assert "&lt;script&gt;" in page, url


def _token(username: str, password: str, **extra) -> int:
    from rest_framework.test import APIClient

    return (
        APIClient()
        .post("/api/auth/token/", {"username": username, "password": password}, **extra)
        .status_code
    )


def test_a_forged_x_forwarded_for_does_not_give_a_fresh_address_to_the_token_guard(
    db, make_user, settings
):
    settings.LOGIN_FAILURES_PER_MINUTE = 3
    make_user("ann", password="a right password")
    answers = [
        _token("ann", f"guess {i}", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")  # claims new addresses
        for i in range(5)
    ]
    assert answers == [400, 400, 400, 429, 429]


def test_successful_sign_ins_are_not_counted_so_an_office_behind_one_address_gets_in(
    db, make_user, settings
):
    settings.LOGIN_FAILURES_PER_MINUTE = 3
    names = [make_user(f"annotator{i}", password="a right password").username for i in range(30)]
    assert {_token(name, "a right password") for name in names} == {200}
    assert {Client().post("/accounts/login/", {"username": n, "password": "a right password"})
            .status_code for n in names[:10]} == {302}  # fmt: skip


def test_guesses_at_one_account_from_many_addresses_are_refused_but_not_its_owners_browser(
    db, make_user, settings
):
    settings.NUM_PROXIES = 1  # each guess really comes from another address
    settings.ACCOUNT_FAILURES_PER_HOUR = 5
    make_user("ann", password="a right password")
    first = Client()
    signed_in = first.post("/accounts/login/", {"username": "ann", "password": "a right password"})
    assert signed_in.status_code == 302  # signed in once: the browser keeps a device cookie
    owner = Client()  # the same browser another day (a test client's logout drops cookies)
    owner.cookies["signin_device"] = first.cookies["signin_device"].value

    def guess(i: int, password: str) -> int:
        return _token("ann", password, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")

    assert [guess(i, f"guess {i}") for i in range(5)] == [400] * 5
    assert guess(50, "a right password") == 429  # even the right one, from a new address
    refused = Client(HTTP_X_FORWARDED_FOR="198.51.100.51").post(
        "/accounts/login/", {"username": "ann", "password": "a right password"}
    )
    assert refused.status_code == 429 and b"this account" in refused.content
    assert _token("bob", "anything", HTTP_X_FORWARDED_FOR="198.51.100.52") == 400  # others: no

    back = owner.post(
        "/accounts/login/",
        {"username": "ann", "password": "a right password"},
        HTTP_X_FORWARDED_FOR="203.0.113.9",  # the owner, from an address never seen
    )
    assert back.status_code == 302


def test_a_forged_device_cookie_is_no_way_past_the_account_guard(db, make_user, settings):
    settings.ACCOUNT_FAILURES_PER_HOUR = 1
    make_user("ann", password="a right password")
    assert _token("ann", "wrong") == 400
    forged = Client()
    forged.cookies["signin_device"] = '["ann"]'  # unsigned
    response = forged.post("/accounts/login/", {"username": "ann", "password": "a right password"})
    assert response.status_code == 429


def test_behind_a_configured_proxy_the_login_throttle_keys_on_the_address_it_saw(
    db, make_user, settings
):
    from core.clients import client_address

    settings.NUM_PROXIES = 1
    meta = {"REMOTE_ADDR": "10.1.1.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    request = type("Request", (), {"META": meta})()
    assert client_address(request) == "203.0.113.7"  # not the client's own claim, 6.6.6.6
    settings.NUM_PROXIES = 0
    assert client_address(request) == "10.1.1.1"


@pytest.mark.parametrize("password", ["password", "12345678", "qwertyuiop"])
def test_common_and_numeric_passwords_are_refused(db, password):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password(password)
