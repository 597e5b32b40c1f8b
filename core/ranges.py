"""Stored files served with HTTP Range support (RFC 9110 §14): a browser seeks in a video
(setting ``currentTime``, a scrub bar) only when the server answers byte ranges; without
them Chromium snaps every seek back to the start."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.core.files.storage import Storage
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
CHUNK_BYTES = 64 * 1024


def ranged_file_response(
    request: HttpRequest, *, storage: Storage, path: str, content_type: str
) -> HttpResponse:
    """The file ``path`` of ``storage``: 200 with all of it, or, for a single
    ``Range: bytes=first-last`` (either end may be left out), 206 with that part; 416 for
    a range that starts past the end. Several ranges at once are answered with all of it
    (allowed: a server may ignore Range)."""
    size = storage.size(path)
    wanted = _SINGLE_RANGE.fullmatch(request.headers.get("Range", "").strip())
    if wanted is None or wanted[1] == wanted[2] == "":
        response = FileResponse(storage.open(path, "rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return response
    if wanted[1]:
        first = int(wanted[1])
        last = min(int(wanted[2]), size - 1) if wanted[2] else size - 1
    else:  # bytes=-N: the last N bytes
        first, last = max(0, size - int(wanted[2])), size - 1
    if first >= size or first > last:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    response = StreamingHttpResponse(
        _read(storage, path, first=first, length=last - first + 1),
        status=206,
        content_type=content_type,
    )
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Length"] = str(last - first + 1)
    response["Accept-Ranges"] = "bytes"
    return response


def _read(storage: Storage, path: str, *, first: int, length: int) -> Iterator[bytes]:
    with storage.open(path, "rb") as f:
        f.seek(first)
        while length > 0:
            chunk = f.read(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
