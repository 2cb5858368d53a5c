"""The wire format of `/v1/realtime`, version 1 (docs/protocol.md).

Pure parsing and encoding, no I/O: every malformed input a client can send turns
into one `ProtocolError` with a documented code here, so the connection can answer
with an `error` event and carry on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
PATH = "/v1/realtime"
COMPANION_PATH = "/v1/companion"  # GET: {name, picture}, with the token
PICTURE_PATH = "/v1/companion/picture"  # GET: the companion's picture, with the token
MAX_TEXT_BYTES = 64 * 1024  # larger JSON frames get an error event
MAX_AUDIO_BYTES = 64 * 1024  # larger binary frames get an error event (0.68 s at 48 kHz)
MAX_MESSAGE_BYTES = 1 << 20  # larger frames of any kind: the socket closes with 1009
MIN_RATE, MAX_RATE = 8000, 48000
MAX_INSTRUCTIONS_CHARS = 16_000
MAX_INPUT_TEXT_CHARS = 4_000

ERROR_CODES = {
    "invalid_json": "a text frame is not a JSON object",
    "unknown_event": "the event type is not part of this protocol version",
    "invalid_event": "a field is missing or has the wrong type or value",
    "message_too_large": f"a text frame over {MAX_TEXT_BYTES} bytes or a binary frame over {MAX_AUDIO_BYTES}",
    "invalid_audio": "a binary frame is not whole PCM16 samples",
    "invalid_sample_rate": f"a declared input rate outside {MIN_RATE}-{MAX_RATE} Hz",
    "rate_limited": "audio faster than real time, or frames, bytes, events or session.update beyond "
    "their per-second budgets (transports/websocket/limits.py); the excess is dropped",
    "too_much_input": "typed messages waiting for response.create exceed 4000 characters in all",
    "unknown_voice": "session.update asked for a voice this server does not have",
    "voice_failed": "the voice asked for could not be loaded (the call keeps its voice)",
    "download_failed": "voice.download could not install the voice (offline, a bad file, downloads off)",
    "no_input": "response.create without a user message to answer",
    "unknown_item": "conversation.item.truncate names a response this session does not know",
    "memory_not_saved": "a turn could not be saved (disk full?); it is kept and saving is retried",
    "llm_failed": "the language model failed; the reply ends with status failed",
    "internal_error": "an unexpected server error; the session goes on",
}


class ProtocolError(Exception):
    """A client frame the server cannot use; becomes an `error` event."""

    def __init__(self, code: str, message: str, event_id: str | None = None) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code, self.message, self.event_id = code, message, event_id


@dataclass(frozen=True)
class SessionUpdate:
    event_id: str | None
    input_rate: int | None = None
    voice: str | None = None
    instructions: str | None = None
    speed: float | None = None  # 1.0 normal; 0.5-2.0


@dataclass(frozen=True)
class ItemCreate:
    event_id: str | None
    text: str


@dataclass(frozen=True)
class ResponseCreate:
    event_id: str | None


@dataclass(frozen=True)
class Truncate:
    event_id: str | None
    item_id: str
    audio_end_ms: float


@dataclass(frozen=True)
class PlaybackMark:
    event_id: str | None
    response_id: str
    played_ms: float


@dataclass(frozen=True)
class Ping:
    event_id: str | None


@dataclass(frozen=True)
class VoiceDownload:
    """The call screen asks the server's computer to download a catalog voice (the one a
    `voice_missing` notice offered)."""

    event_id: str | None
    voice: str


ClientEvent = SessionUpdate | ItemCreate | ResponseCreate | Truncate | PlaybackMark | Ping | VoiceDownload


def parse_text(data: str) -> ClientEvent:
    """One JSON text frame from a client → a typed event, or `ProtocolError`."""
    if len(data.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise ProtocolError("message_too_large", f"text frames are limited to {MAX_TEXT_BYTES} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError: also integers over 4300 digits
        raise ProtocolError("invalid_json", f"not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_json", "a text frame must be a JSON object with a 'type'")
    if not _is_utf8(
        json.dumps(obj, ensure_ascii=False)
    ):  # "\udd0f" is valid JSON but no text: echoing it back broke the connection
        raise ProtocolError("invalid_json", "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff)")
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError("unknown_event", f"unknown event type {kind!r}; see docs/protocol.md", event_id)
    try:
        return parser(obj, event_id)
    except ProtocolError as exc:
        exc.event_id = event_id
        raise


def _session_update(obj: dict, event_id: str | None) -> SessionUpdate:
    session = _field(obj, "session", dict)
    audio = _field(session, "audio", dict, {})
    fmt = _field(_field(audio, "input", dict, {}), "format", dict, {})
    if fmt.get("type", "audio/pcm") != "audio/pcm":
        raise ProtocolError("invalid_event", "only audio/pcm (PCM16 LE mono) input is supported")
    rate = fmt.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE):
        raise ProtocolError(
            "invalid_sample_rate", f"input rate must be an integer {MIN_RATE}-{MAX_RATE} Hz, got {rate!r}"
        )
    output = _field(audio, "output", dict, {})
    voice = _field(output, "voice", str, None)
    speed = output.get("speed")
    if speed is not None and (
        isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.5 <= speed <= 2.0
    ):
        raise ProtocolError("invalid_event", f"speed must be a number from 0.5 to 2.0, got {speed!r}")
    instructions = _field(session, "instructions", str, None)
    if instructions is not None and len(instructions) > MAX_INSTRUCTIONS_CHARS:
        raise ProtocolError("invalid_event", f"instructions are limited to {MAX_INSTRUCTIONS_CHARS} characters")
    return SessionUpdate(event_id, rate, voice, instructions, float(speed) if speed is not None else None)


def _item_create(obj: dict, event_id: str | None) -> ItemCreate:
    item = _field(obj, "item", dict)
    if item.get("type", "message") != "message" or item.get("role") != "user":
        raise ProtocolError("invalid_event", "only user messages can be created: role 'user', type 'message'")
    parts = _field(item, "content", list)
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "input_text"]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ProtocolError("invalid_event", "content needs input_text parts with a 'text' string")
    text = " ".join(t.strip() for t in texts if isinstance(t, str)).strip()  # all are, checked above
    if not text or len(text) > MAX_INPUT_TEXT_CHARS:
        raise ProtocolError("invalid_event", f"text must be 1-{MAX_INPUT_TEXT_CHARS} characters")
    return ItemCreate(event_id, text)


def _truncate(obj: dict, event_id: str | None) -> Truncate:
    return Truncate(event_id, _field(obj, "item_id", str), _milliseconds(obj, "audio_end_ms"))


def _voice_id(obj: dict) -> str:
    voice = _field(obj, "voice", str)
    if not 0 < len(voice) <= 100:
        raise ProtocolError("invalid_event", "voice must be a voice id of 1-100 characters")
    return voice


def _mark(obj: dict, event_id: str | None) -> PlaybackMark:
    return PlaybackMark(event_id, _field(obj, "response_id", str), _milliseconds(obj, "played_ms"))


_PARSERS: dict[str, Callable[[dict[str, Any], str | None], ClientEvent]] = {
    "session.update": _session_update,
    "conversation.item.create": _item_create,
    "response.create": lambda obj, event_id: ResponseCreate(event_id),
    "conversation.item.truncate": _truncate,
    "playback.mark": _mark,
    "ping": lambda obj, event_id: Ping(event_id),
    "voice.download": lambda obj, event_id: VoiceDownload(event_id, _voice_id(obj)),
}
CLIENT_EVENTS = tuple(_PARSERS)

_MISSING = object()


def _field(obj: dict, name: str, kind: type, default: Any = _MISSING) -> Any:
    value = obj.get(name, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise ProtocolError("invalid_event", f"missing field {name!r}")
        return default
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError("invalid_event", f"field {name!r} must be a {kind.__name__}")
    return value


def _milliseconds(obj: dict, name: str) -> float:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ProtocolError("invalid_event", f"field {name!r} must be a number of milliseconds >= 0")
    return float(value)


def encode(event: dict[str, Any]) -> str:
    text = json.dumps(event, ensure_ascii=False, allow_nan=False, default=_jsonable)
    if not _is_utf8(text):  # a lone surrogate from anywhere: escaped, the frame stays valid UTF-8
        text = json.dumps(event, ensure_ascii=True, allow_nan=False, default=_jsonable)
    return text


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__}")


def error_event(code: str, message: str, event_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "event_id": event_id}
