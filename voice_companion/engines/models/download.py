"""Resumable, verified downloads from the Hugging Face Hub (or any HTTP mirror).

The file grows in `NAME.part` next to its destination; an interrupted download
resumes with a Range request; only a file whose size and sha256 match is renamed
into place, so a model is never half-written. The expected sha256 is the pinned
one when we have it, else the Hub's LFS ETag (`X-Linked-Etag`), which is the
file's sha256. The Hub puts that header on its 302 to the CDN, so redirects are
searched too.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx

from voice_companion.core.errors import DownloadError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+)")
_BLOCK = 1 << 20


def hf_file_url(endpoint: str, repo: str, path: str, revision: str = "main") -> str:
    """The Hub's download URL for one file (`revision` may be a branch, tag or commit)."""
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    description: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Download `url` to `dest` (resuming a `.part`), verify size and sha256, rename into place.
    `on_bytes(received)` is told the file's bytes so far as they arrive (a resumed part included)."""
    dest = Path(dest)
    name = description or dest.name
    sha256 = sha256.lower() if sha256 else None
    if dest.is_file() and _matches(dest, size, sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:  # a stale part from another file: start over
        part.unlink()
        have = 0
    # identity: Range and sizes must count the file's bytes, not a compressed stream's
    request_headers = {"Accept-Encoding": "identity", **(headers or {})}
    if (token := os.environ.get("HF_TOKEN")) and "Authorization" not in request_headers:
        request_headers["Authorization"] = f"Bearer {token}"  # httpx drops it on cross-host redirects
    if have:
        request_headers["Range"] = f"bytes={have}-"
    host = urlparse(url).hostname or url
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with httpx.Client(follow_redirects=True, timeout=timeout_s) as client:
            with client.stream("GET", url, headers=request_headers) as response:
                sha256 = sha256 or _server_sha(response)
                size = size if size is not None else _server_size(response, have)
                if response.status_code == 416 and have:
                    if have != size:  # the part is not a prefix of this file: start over
                        part.unlink()
                        return download_file(
                            url,
                            dest,
                            sha256=sha256,
                            size=size,
                            progress=progress,
                            description=description,
                            headers=headers,
                            timeout_s=timeout_s,
                            on_bytes=on_bytes,
                        )
                    digest = _hash_file(part)
                else:
                    _check_status(response, name, url)
                    if response.status_code == 200:  # no Range support (or no part): from zero
                        have = 0
                    elif _range_start(response) != have:
                        raise DownloadError(
                            f"{host} resumed {name} at the wrong offset; delete {part} and run the same command again"
                        )
                    digest = _hash_file(part) if have else hashlib.sha256()
                    _write(response, part, have, size, digest, name, progress, on_bytes)
    except httpx.TimeoutException as exc:
        raise DownloadError(
            f"{host} did not answer within {timeout_s:g} s while downloading {name}; "
            "check your network and run the same command again to resume"
        ) from exc
    except httpx.ConnectError as exc:
        raise DownloadError(
            f"cannot reach {host} to download {name}: {_reason(exc)}; check your network or set HF_ENDPOINT to a mirror"
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        got = part.stat().st_size if part.is_file() else 0
        raise DownloadError(
            f"download of {name} was interrupted after {got / 1e6:.1f} MB; run the same command again to resume"
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise DownloadError(
            f"downloading {name} from {url} failed: {_reason(exc)}; check the address (or HF_ENDPOINT) and try again"
        ) from exc
    except OSError as exc:
        raise DownloadError(
            f"cannot write {part}: {exc.strerror or exc}; free some disk space or check the folder's permissions"
        ) from exc
    _verify(part, name, size, sha256, digest.hexdigest())
    os.replace(part, dest)
    return dest


def _check_status(response: httpx.Response, name: str, url: str) -> None:
    code = response.status_code
    if code in (200, 206):
        return
    if code == 404:
        raise DownloadError(f"{name} not found at {url} (HTTP 404); check the model name, revision and HF_ENDPOINT")
    if code in (401, 403):
        raise DownloadError(
            f"access to {name} was refused (HTTP {code}); if the model is gated, accept "
            "its terms on the Hub and set HF_TOKEN to a Hugging Face access token"
        )
    raise DownloadError(
        f"downloading {name} from {url} failed with HTTP {code}; try again later or set HF_ENDPOINT to a mirror"
    )


def _responses(response: httpx.Response) -> list[httpx.Response]:
    """The redirects, then the final answer: the Hub's X-Linked-* headers ride on its 302."""
    return [*response.history, response]


def _server_sha(response: httpx.Response) -> str | None:
    for header in ("x-linked-etag", "etag"):
        for r in _responses(response):
            value = r.headers.get(header, "").strip().removeprefix("W/").strip('"').lower()
            if _SHA256.match(value):
                return value
    return None


def _server_size(response: httpx.Response, have: int) -> int | None:
    for r in _responses(response):
        if (linked := r.headers.get("x-linked-size", "")).isdigit():
            return int(linked)
    if match := _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip()):
        return int(match[2])
    if response.status_code == 200 and (length := response.headers.get("content-length", "")).isdigit():
        return int(length)
    return None


def _range_start(response: httpx.Response) -> int:
    """Where the body starts in the file: 0 unless a 206 says otherwise."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    return int(match[1]) if response.status_code == 206 and match and match[1] else 0


def _write(
    response: httpx.Response,
    part: Path,
    have: int,
    total: int | None,
    digest: hashlib._Hash,
    name: str,
    progress: bool,
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    from tqdm import tqdm

    with (
        open(part, "ab" if have else "wb") as out,
        tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            disable=not progress,
            file=sys.stderr,
            leave=True,
        ) as bar,
    ):
        for block in response.iter_bytes():  # as received, so a cut keeps every byte
            out.write(block)
            digest.update(block)
            bar.update(len(block))
            have += len(block)
            if on_bytes is not None:
                on_bytes(have)


def _verify(part: Path, name: str, size: int | None, expected: str | None, actual: str) -> None:
    """Reject (and delete) a part whose size or sha256 is wrong: resuming it cannot help."""
    length = part.stat().st_size
    if size is not None and length != size:
        part.unlink()
        raise DownloadError(
            f"size mismatch for {name}: expected {size} bytes, got {length}; the file on "
            "the server changed or was corrupted in transit — retry, or report it"
        )
    if expected is not None and actual != expected:
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {name}: expected sha256 {expected}, got {actual}; "
            "the file on the server changed or was corrupted in transit — retry, or report it"
        )


def _matches(path: Path, size: int | None, sha256: str | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or _hash_file(path).hexdigest() == sha256


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest


def _reason(exc: BaseException) -> str:
    """The innermost cause, on one line (e.g. '[Errno 111] Connection refused')."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return " ".join(str(exc).split()) or type(exc).__name__
