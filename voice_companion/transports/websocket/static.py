"""The web client's files, served over plain HTTP GET on the WebSocket's port.

The page holds no secret (the token stays in the URL fragment), so it is served
without a token; paths are confined to the web folder.
"""

from __future__ import annotations

import http
import json
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

WEB_DIR = Path(__file__).parent / "web"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def static_response(web_dir: Path, request_path: str) -> Response:
    path = unquote(urlsplit(request_path).path)
    relative = path.lstrip("/") or "index.html"
    root = web_dir.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return text_response(http.HTTPStatus.NOT_FOUND, "not found\n")
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if target.suffix == ".js":
        kind = "text/javascript"  # AudioWorklet modules need a JavaScript type
    if kind.startswith("text/") or kind == "application/json":
        kind += "; charset=utf-8"
    return _response(http.HTTPStatus.OK, kind, target.read_bytes())


def json_response(value: object) -> Response:
    return _response(http.HTTPStatus.OK, "application/json; charset=utf-8", json.dumps(value).encode())


def file_response(path: Path) -> Response:
    """A file the server chose (never a path from the request)."""
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return _response(http.HTTPStatus.OK, kind, path.read_bytes())


def text_response(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, "text/plain; charset=utf-8", text.encode())


def _response(status: http.HTTPStatus, content_type: str, body: bytes) -> Response:
    headers = Headers(
        {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close", **_SECURITY_HEADERS}
    )
    return Response(status.value, status.phrase, headers, body)
