"""Resumable, verified downloads from the Hugging Face Hub (or any HTTP mirror).

The file grows in `NAME.part` next to its destination; an interrupted download
resumes with a Range request; only a file whose size and sha256 match is renamed
into place, so a model is never half-written. The expected sha256 is the pinned
one when we have it, else the Hub's LFS ETag (`X-Linked-Etag`), which is the
file's sha256.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx

from voice_companion.errors import DownloadError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1 << 20


def hf_file_url(endpoint: str, repo: str, path: str, revision: str = "main") -> str:
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
) -> Path:
    dest = Path(dest)
    name = description or dest.name
    if dest.is_file() and _matches(dest, size, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request_headers = dict(headers or {})
    if token := os.environ.get("HF_TOKEN"):
        request_headers["Authorization"] = f"Bearer {token}"
    have = part.stat().st_size if part.exists() else 0
    if have:
        request_headers["Range"] = f"bytes={have}-"
    host = urlparse(url).netloc
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout_s) as client:
            with client.stream("GET", url, headers=request_headers) as response:
                if response.status_code == 416 and size is not None and have == size:
                    pass  # already complete
                else:
                    _check_status(response, name, url)
                    if response.status_code != 206:
                        have = 0  # the server ignored Range: start again
                    sha256 = sha256 or _etag_sha(response)
                    total = _total_size(response, have) or size
                    _write(response, part, have, total, name, progress)
    except httpx.TimeoutException as exc:
        raise DownloadError(f"{host} did not answer within {timeout_s:.0f} s while downloading {name}; "
                            "run the same command again to resume") from exc
    except httpx.ConnectError as exc:
        raise DownloadError(f"cannot reach {host} to download {name}: {_reason(exc)}; "
                            "check your network or set HF_ENDPOINT to a mirror") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        got = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"download of {name} was interrupted after {got / 1e6:.1f} MB; "
                            "run the same command again to resume") from exc
    _verify(part, name, size, sha256)
    os.replace(part, dest)
    return dest


def _check_status(response: httpx.Response, name: str, url: str) -> None:
    code = response.status_code
    if code in (200, 206):
        return
    if code == 404:
        raise DownloadError(f"{name} not found at {url} (HTTP 404)")
    if code in (401, 403):
        raise DownloadError(f"access to {name} was refused (HTTP {code}); if the model is gated, "
                            "set HF_TOKEN to a Hugging Face access token")
    raise DownloadError(f"downloading {name} failed with HTTP {code}; try again later")


def _etag_sha(response: httpx.Response) -> str | None:
    for header in ("x-linked-etag", "etag"):
        value = response.headers.get(header, "").removeprefix("W/").strip('"').lower()
        if _SHA256.match(value):
            return value
    return None


def _total_size(response: httpx.Response, have: int) -> int | None:
    linked = response.headers.get("x-linked-size")
    if linked and linked.isdigit():
        return int(linked)
    length = response.headers.get("content-length")
    return have + int(length) if length and length.isdigit() else None


def _write(response: httpx.Response, part: Path, have: int, total: int | None, name: str,
           progress: bool) -> None:
    from tqdm import tqdm

    with open(part, "ab" if have else "wb") as out, tqdm(
        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
        disable=not progress, file=sys.stderr, leave=True,
    ) as bar:
        for block in response.iter_bytes():  # as received, so a cut keeps every byte
            out.write(block)
            bar.update(len(block))


def _verify(part: Path, name: str, size: int | None, sha256: str | None) -> None:
    actual = part.stat().st_size
    if size is not None and actual != size:
        part.unlink()
        raise DownloadError(f"size mismatch for {name}: expected {size} bytes, got {actual}; "
                            "the file on the server changed or the transfer was corrupted — retry")
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(f"checksum mismatch for {name}: expected {sha256[:12]}…, got "
                                f"{digest[:12]}…; the file on the server changed or was corrupted "
                                "in transit — retry, or report it")


def _matches(path: Path, size: int | None, sha256: str | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or _sha256(path) == sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return str(exc) or type(exc).__name__
