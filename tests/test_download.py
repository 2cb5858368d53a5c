"""Downloads against a local HTTP server that behaves like the Hub (never the network)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading

import pytest

from voice_companion.core.errors import DownloadError
from voice_companion.engines.models.download import download_file, hf_file_url

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
PATH = "/org/model/resolve/main/model.bin"


class Hub(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at PATH; `Hub.mode` sets the behaviour per test, `Hub.seen` records requests."""

    mode: dict = {}
    seen: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        mode = Hub.mode
        Hub.seen.append(dict(self.headers))
        if mode.get("status"):
            self.send_error(mode["status"])
            return
        if mode.get("redirect") and self.path == PATH:  # like the Hub: LFS metadata on the 302
            self.send_response(302)
            self.send_header("Location", "/cdn/model.bin")
            self.send_header("X-Linked-Etag", f'"{SHA}"')
            self.send_header("X-Linked-Size", str(len(PAYLOAD)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = mode.get("body", PAYLOAD)
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not mode.get("ignore_range"):
            start = int(wanted.split("=")[1].rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        if mode.get("etag"):
            self.send_header("X-Linked-Etag", f'"{SHA}"')
        self.end_headers()
        cut = mode.pop("cut_after", None)  # cut once: promise the full length, send less, hang up
        self.wfile.write(body[start : start + cut] if cut else body[start:])
        if cut:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture()
def hub(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    Hub.mode, Hub.seen = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield hf_file_url(f"http://127.0.0.1:{server.server_address[1]}", "org/model", "model.bin")
    server.shutdown()
    server.server_close()


def test_url_quotes_path_segments():
    assert hf_file_url("https://hf.co", "o/m", "a b/c.bin", "refs/pr/1") == (
        "https://hf.co/o/m/resolve/refs%2Fpr%2F1/a%20b/c.bin"
    )


def test_download_with_pinned_checksum(hub, tmp_path):
    dest = download_file(hub, tmp_path / "m" / "model.bin", sha256=SHA, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not list(tmp_path.rglob("*.part"))


def test_corrupted_content_with_pinned_checksum(hub, tmp_path):
    Hub.mode = {"body": PAYLOAD[:-1] + b"\0"}
    with pytest.raises(DownloadError, match="checksum mismatch for model.bin") as err:
        download_file(hub, tmp_path / "model.bin", sha256=SHA, progress=False)
    assert "\n" not in str(err.value) and "retry" in str(err.value)
    assert not list(tmp_path.iterdir())  # neither dest nor .part


def test_checksum_from_hub_etag(hub, tmp_path):
    Hub.mode = {"etag": True, "body": PAYLOAD[:-1] + b"\0"}
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(hub, tmp_path / "model.bin", progress=False)
    assert not list(tmp_path.iterdir())
    Hub.mode = {"etag": True}
    assert download_file(hub, tmp_path / "model.bin", progress=False).read_bytes() == PAYLOAD


def test_checksum_and_size_from_hub_redirect(hub, tmp_path):
    Hub.mode = {"redirect": True, "body": PAYLOAD[:-1] + b"\0"}
    with pytest.raises(DownloadError, match=f"expected sha256 {SHA}"):
        download_file(hub, tmp_path / "model.bin", progress=False)
    Hub.mode = {"redirect": True, "body": PAYLOAD + b"extra"}
    with pytest.raises(DownloadError, match="size mismatch"):
        download_file(hub, tmp_path / "model.bin", progress=False)
    Hub.mode = {"redirect": True}
    assert download_file(hub, tmp_path / "model.bin", progress=False).read_bytes() == PAYLOAD


def test_cut_connection_keeps_part_and_resumes(hub, tmp_path):
    dest = tmp_path / "model.bin"
    Hub.mode = {"cut_after": 1_000_000}
    with pytest.raises(DownloadError, match="interrupted after 1.0 MB.*run the same command again") as err:
        download_file(hub, dest, sha256=SHA, progress=False)
    assert "\n" not in str(err.value)
    assert not dest.exists()
    assert (tmp_path / "model.bin.part").stat().st_size == 1_000_000
    download_file(hub, dest, sha256=SHA, progress=False)
    assert Hub.seen[-1]["Range"] == "bytes=1000000-"
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "model.bin.part").exists()


def test_complete_part_is_finished_on_416(hub, tmp_path):
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD)
    assert download_file(hub, tmp_path / "model.bin", sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert Hub.seen[-1]["Range"] == f"bytes={len(PAYLOAD)}-"


def test_server_without_range_support_restarts(hub, tmp_path):
    (tmp_path / "model.bin.part").write_bytes(b"x" * 5000)
    Hub.mode = {"ignore_range": True}
    assert download_file(hub, tmp_path / "model.bin", sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert Hub.seen[-1]["Range"] == "bytes=5000-"


@pytest.mark.parametrize("status, fragment", [(404, "not found"), (500, "HTTP 500"), (403, "HF_TOKEN")])
def test_http_errors_are_one_line(hub, tmp_path, status, fragment):
    Hub.mode = {"status": status}
    with pytest.raises(DownloadError, match=fragment) as err:
        download_file(hub, tmp_path / "model.bin", progress=False)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_hf_token_is_sent_and_never_shown(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    Hub.mode = {"status": 403}
    with pytest.raises(DownloadError) as err:
        download_file(hub, tmp_path / "model.bin", progress=False)
    assert Hub.seen[-1]["Authorization"] == "Bearer hf_secret"
    assert "hf_secret" not in str(err.value)


def test_unreachable_host(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1 .*HF_ENDPOINT") as err:
        download_file(f"http://127.0.0.1:{port}/x/resolve/main/y", tmp_path / "y", progress=False)
    assert "\n" not in str(err.value)


def test_present_file_needs_no_network(tmp_path):
    dest = tmp_path / "model.bin"
    dest.write_bytes(PAYLOAD)
    # port 9 is closed: any request would raise
    assert download_file("http://127.0.0.1:9/never", dest, sha256=SHA, size=len(PAYLOAD), progress=False) == dest


def test_progress_bar_on_stderr(hub, tmp_path, capfd):
    download_file(hub, tmp_path / "model.bin", sha256=SHA, progress=True, description="tiny model")
    err = capfd.readouterr().err
    assert "tiny model" in err and "100%" in err
