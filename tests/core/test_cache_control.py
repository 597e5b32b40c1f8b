"""API answers and signed-in pages say `private, no-store`; what sets its own keeps it."""

import pytest


@pytest.mark.django_db
def test_api_answers_and_exports_are_private_and_not_stored(make_user, api_client_for):
    client = api_client_for(make_user(staff=True))
    client.post("/api/projects/", {"slug": "p", "name": "P"}, format="json")
    for path in ("/api/projects/", "/api/projects/p/export/", "/api/nowhere/"):
        assert client.get(path)["Cache-Control"] == "private, no-store", path


@pytest.mark.django_db
def test_a_signed_in_page_is_private_and_the_login_page_keeps_its_own(client, make_user):
    client.force_login(make_user())
    assert client.get("/")["Cache-Control"] == "private, no-store"
    client.logout()
    login = client.get("/accounts/login/")["Cache-Control"]  # Django's never_cache
    assert "no-cache" in login and "private" in login
