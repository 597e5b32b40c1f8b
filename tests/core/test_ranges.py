"""Media answer HTTP Range requests, so that a browser can seek in (and scrub) a clip."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from labeling.models import Item

CONTENT = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def clip_client(media_root, make_user, make_project):
    """(a client logged in as a member, the clip's URL)."""
    user = make_user()
    project = make_project(members=[user])
    name = default_storage.save("clips/test/clip.mp4", ContentFile(CONTENT))
    item = Item.objects.create(project=project, clip=name)
    client = Client()
    client.force_login(user)
    return client, item.clip.url


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_without_a_range_the_whole_file_comes_with_accept_ranges(clip_client):
    client, url = clip_client

    response = client.get(url)

    assert response.status_code == 200 and response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert _body(response) == CONTENT


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-", 0, 10239), ("bytes=100-199", 100, 199), ("bytes=-24", 10216, 10239),
     ("bytes=10000-99999", 10000, 10239)],
)  # fmt: skip
def test_a_single_range_is_206_with_those_bytes(clip_client, header, first, last):
    client, url = clip_client

    response = client.get(url, HTTP_RANGE=header)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert _body(response) == CONTENT[first : last + 1]


def test_a_range_past_the_end_is_416(clip_client):
    client, url = clip_client

    response = client.get(url, HTTP_RANGE="bytes=20000-")

    assert response.status_code == 416 and response["Content-Range"] == "bytes */10240"


def test_several_ranges_at_once_get_the_whole_file(clip_client):
    client, url = clip_client

    response = client.get(url, HTTP_RANGE="bytes=0-1,5-6")

    assert response.status_code == 200 and _body(response) == CONTENT


def test_a_range_is_still_only_for_members(clip_client, make_user):
    _, url = clip_client
    outsider = Client()
    outsider.force_login(make_user())

    assert outsider.get(url, HTTP_RANGE="bytes=0-10").status_code == 404
