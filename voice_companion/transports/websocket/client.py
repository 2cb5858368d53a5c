"""A Python client for `voice-companion serve` (docs/protocol.md).

`RealtimeClient` speaks the protocol; `call_file` plays a question file into a
call at real-time pace, like a person talking into a phone, and measures the
voice-to-voice latency a caller would hear: from the end of the sent speech to
the first reply audio frame received.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from voice_companion.core.audio import STT_RATE, load_for_stt, to_int16, write_wav
from voice_companion.core.errors import CompanionError
from voice_companion.transports.websocket.audio_frames import AudioFrame, decode_audio
from voice_companion.transports.websocket.protocol import MAX_MESSAGE_BYTES, PATH

BLOCK = STT_RATE // 50  # 20 ms frames, as a microphone delivers them
SPEECH_DBFS = -45.0  # quieter 20 ms blocks count as silence when finding the end of speech


def realtime_url(url: str) -> tuple[str, str | None]:
    """The WebSocket URL and any token in it, from ws(s)://…/v1/realtime or the
    http(s)://host:port/#token=… page URL that `serve` prints."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise CompanionError(f"not a server URL: {url!r}; use e.g. ws://127.0.0.1:8765{PATH}")
    token = dict(p.split("=", 1) for p in parts.fragment.split("&") if "=" in p).get("token")
    path = parts.path if parts.path not in ("", "/") else PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, "")), token


def client_ssl(cafile: str | Path | None = None, insecure: bool = False) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:  # a missing file, or one that holds no certificate
        raise CompanionError(f"cannot use the certificate {cafile}: {exc}; pass the cert.pem `serve` printed") from None


class RealtimeClient:
    def __init__(self, ws: ClientConnection, session: dict[str, Any]) -> None:
        self.ws, self.session = ws, session

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None,
        *,
        cafile: str | Path | None = None,
        insecure: bool = False,
        conversation: str | None = None,
    ) -> RealtimeClient:
        """Open a call; the first server event (`session.created`) is kept in `.session`."""
        url, url_token = realtime_url(url)
        token = token or url_token
        if conversation:
            url += ("&" if "?" in url else "?") + urlencode({"conversation": conversation})
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        tls = client_ssl(cafile, insecure) if url.startswith("wss:") else None
        try:
            ws = await connect(
                url, additional_headers=headers, ssl=tls, max_size=MAX_MESSAGE_BYTES, compression=None, open_timeout=10
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            hint = (
                "pass the token `serve` printed (--token)"
                if status == 401
                else exc.response.body.decode(errors="replace").strip()
            )
            raise CompanionError(f"the server refused the call ({status}): {hint}") from None
        except ssl.SSLCertVerificationError as exc:  # the server answered: its certificate is the problem
            raise CompanionError(
                f"cannot verify the certificate of {url} ({exc.verify_message}); for `serve --tls-self-signed`, "
                "pass --tls-ca with the certificate file it printed, or --insecure to skip the check"
            ) from None
        except (TimeoutError, OSError, WebSocketException) as exc:
            raise CompanionError(f"cannot reach {url}: {exc}; is `voice-companion serve` running?") from None
        first = json.loads(await ws.recv())
        if first.get("type") != "session.created":
            await ws.close()
            raise CompanionError(f"unexpected first event {first.get('type')!r} from {url}")
        return cls(ws, first["session"])

    @property
    def output_rate(self) -> int:
        return self.session["audio"]["output"]["format"]["rate"]

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def send_text(self, text: str) -> None:
        """A typed user message (the reply follows a `response.create`)."""
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": "conversation.item.create", "item": item})

    async def send_audio(self, samples: np.ndarray) -> None:
        await self.ws.send(samples.astype("<i2").tobytes())

    async def recv(self) -> dict[str, Any] | AudioFrame:
        message = await self.ws.recv()
        return decode_audio(message) if isinstance(message, bytes) else json.loads(message)

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> RealtimeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass
class CallResult:
    transcript: str = ""
    reply: str = ""
    status: str = ""
    response_id: str | None = None
    output: str | None = None
    sample_rate: int = 0
    audio_s: float = 0.0
    v2v_ms: float | None = None  # end of sent speech → first reply audio frame received
    server_metrics: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["v2v_ms"] = round(self.v2v_ms, 1) if self.v2v_ms is not None else None
        return d


def speech_end(pcm: np.ndarray) -> int:
    """Sample index just after the last 20 ms block loud enough to be speech."""
    blocks = len(pcm) // BLOCK
    for i in range(blocks - 1, -1, -1):
        block = pcm[i * BLOCK : (i + 1) * BLOCK].astype(np.float64)
        if 20 * np.log10(np.sqrt(np.mean(block**2)) / 32768 + 1e-12) > SPEECH_DBFS:
            return (i + 1) * BLOCK
    return len(pcm)


async def call_file(
    url: str,
    token: str | None,
    input_path: str | Path,
    output_path: str | Path | None,
    *,
    cafile: str | Path | None = None,
    insecure: bool = False,
    timeout_s: float = 60,
) -> CallResult:
    """Say the question file into a call (then silence) and collect the first reply."""
    pcm = to_int16(load_for_stt(input_path))
    end = speech_end(pcm)
    result = CallResult()
    async with await RealtimeClient.connect(url, token, cafile=cafile, insecure=insecure) as client:
        result.sample_rate = client.output_rate
        said: dict[str, float] = {}
        talker = asyncio.create_task(_talk(client, pcm, end, said))
        try:
            frames = await asyncio.wait_for(_listen(client, result), timeout_s)
        except TimeoutError:
            raise CompanionError(f"no complete reply within {timeout_s:.0f} s") from None
        finally:
            talker.cancel()
            await asyncio.gather(talker, return_exceptions=True)
    if frames:
        first_frame_at = frames[0][0]
        if "speech_end" in said:
            result.v2v_ms = (first_frame_at - said["speech_end"]) * 1000
        audio = np.concatenate([f.samples for _, f in sorted(frames, key=lambda x: x[1].seq)])
        result.audio_s = len(audio) / result.sample_rate
        if output_path is not None:
            result.output = str(write_wav(output_path, audio, result.sample_rate))
    return result


async def _talk(client: RealtimeClient, pcm: np.ndarray, end: int, said: dict[str, float]) -> None:
    """Send 20 ms blocks at real-time pace, each when a microphone would deliver it; then silence."""
    start = time.perf_counter()
    silence = np.zeros(BLOCK, dtype=np.int16)
    i = 0
    while True:
        await asyncio.sleep(max(0.0, start + (i + 1) * BLOCK / STT_RATE - time.perf_counter()))
        block = pcm[i * BLOCK : (i + 1) * BLOCK]
        await client.send_audio(block if len(block) else silence)
        if "speech_end" not in said and (i + 1) * BLOCK >= end:
            said["speech_end"] = time.perf_counter()
        i += 1


async def _listen(client: RealtimeClient, result: CallResult) -> list[tuple[float, AudioFrame]]:
    frames: list[tuple[float, AudioFrame]] = []
    audio_id = None
    while True:
        event = await client.recv()
        if isinstance(event, AudioFrame):
            if event.audio_id == audio_id:
                frames.append((time.perf_counter(), event))
            continue
        kind = event.get("type")
        if kind == "conversation.item.input_audio_transcription.completed":
            result.transcript = " ".join(filter(None, [result.transcript, event["text"]]))
        elif kind == "response.created" and result.response_id is None:
            result.response_id, audio_id = event["response_id"], event["audio_id"]
        elif kind == "metrics.turn" and event.get("response_id") == result.response_id:
            result.server_metrics = {k: v for k, v in event.items() if k not in ("type", "response_id")}
        elif kind == "error":
            result.errors.append(event)
        elif kind == "response.done" and event["response_id"] == result.response_id:
            result.reply, result.status = event["text"], event["status"]
            return frames
