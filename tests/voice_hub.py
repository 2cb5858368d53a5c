"""Test voices published like the Hub: a catalog file plus a local HTTP server on 127.0.0.1.

`TestVoices` builds tiny Piper voices (piper_test_voice.py), writes a catalog with
their real sizes and sha256s (the bundled voice too), and serves
`/{repo}/resolve/{revision}/{path}` with Range support. `Hub.mode` breaks it on
purpose: `corrupt` (wrong bytes, same size), `cut_after` (hang up once after N bytes).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from piper_test_voice import build_voice, sha256_of

REPO, REVISION = "test/piper-voices", "v1"
# id -> (pitch Hz, rate, espeak voice, speakers)
VOICES = {
    "en_US-test_a-x_low": (300, 22050, "en-us", 1),
    "en_US-test_b-x_low": (600, 16000, "en-us", 1),
    "zh_CN-test-x_low": (500, 16000, "cmn", 1),
    "fr_FR-test-x_low": (400, 22050, "fr", 2),
}


class Hub(http.server.BaseHTTPRequestHandler):
    root: Path = Path(".")
    mode: dict = {}
    served: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        prefix = f"/{REPO}/resolve/{REVISION}/"
        file = Hub.root / self.path[len(prefix) :] if self.path.startswith(prefix) else None
        if file is None or not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        if file.name in Hub.mode.get("corrupt", ()):
            body = bytes(len(body))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        Hub.served.append((file.name, start))
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = Hub.mode.get("cut_after", {}).pop(file.name, None)
        self.wfile.write(body[start : start + cut] if cut else body[start:])
        if cut:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


@dataclass
class TestVoices:
    folder: Path  # the "Hub" files, by path
    catalog: Path
    endpoint: str = ""
    server: http.server.ThreadingHTTPServer | None = None

    __test__ = False  # not a test class

    @classmethod
    def build(cls, folder: Path) -> TestVoices:
        entries = [_bundled_entry()]
        for voice_id, (pitch, rate, espeak_voice, speakers) in VOICES.items():
            path = f"{voice_id[:2]}/{voice_id}/{voice_id}.onnx"
            onnx = build_voice(
                (folder / path).parent,
                voice_id,
                pitch_hz=pitch,
                sample_rate=rate,
                espeak_voice=espeak_voice,
                speakers=speakers,
            )
            entries.append(
                {
                    "id": voice_id,
                    "language": voice_id.split("-")[0],
                    "name": voice_id,
                    "gender": "test",
                    "quality": "x_low",
                    "sample_rate": rate,
                    "speakers": [f"speaker{i}" for i in range(speakers)] if speakers > 1 else [],
                    "files": [_file(path, onnx), _file(path + ".json", Path(f"{onnx}.json"))],
                }
            )
        catalog = folder / "catalog.json"
        catalog.write_text(
            json.dumps({"schema": 1, "hub_repo": REPO, "hub_revision": REVISION, "voices": entries}), encoding="utf-8"
        )
        return cls(folder, catalog)

    def serve(self) -> TestVoices:
        Hub.root, Hub.mode, Hub.served = self.folder, {}, []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _file(path: str, local: Path) -> dict:
    return {"path": path, "size": local.stat().st_size, "sha256": sha256_of(local), "checksum_source": "test"}


def _bundled_entry() -> dict:
    real = json.loads(
        (Path(__file__).parents[1] / "voice_companion" / "engines" / "models" / "voice_catalog.json").read_text(
            encoding="utf-8"
        )
    )
    return next(v for v in real["voices"] if v.get("bundled"))
