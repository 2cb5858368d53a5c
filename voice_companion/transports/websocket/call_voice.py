"""Each call's own voice over the server's shared pool of loaded voices.

A phone asks for a voice with `session.update` (`session.audio.output.voice`, `speed`);
only voices installed on the server are offered and accepted. One call's swap never
changes another call's voice; they share the loaded models, not the choice.
"""

from __future__ import annotations

from typing import Any

from voice_companion.core.errors import CompanionError
from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.voices.install import installed_path
from voice_companion.transports.websocket import protocol as p


def for_call(shared_tts: Any) -> Any:
    """A router of the call's own, starting from the server's default voice."""
    fresh = getattr(shared_tts, "fresh", None)
    return fresh() if fresh is not None else shared_tts


def current(tts: Any, default: str) -> str:
    return getattr(tts, "active", default)


def offered(tts: Any, default: str) -> list[str]:
    """The voices this call may switch to: its own, then every installed catalog voice."""
    names = [current(tts, default)]
    pool = getattr(tts, "pool", None)
    if pool is None:
        return names
    try:
        installed = [v.id for v in catalog.voices() if installed_path(v, pool.models_dir) is not None]
    except CompanionError:  # no catalog: only the call's own voice
        installed = []
    return names + [v for v in installed if v not in names]


def check(tts: Any, default: str, event: p.SessionUpdate) -> None:
    """Refuse a voice the server cannot speak with, before anything changes."""
    if event.voice is None or event.voice == current(tts, default):
        if event.speed is not None and not hasattr(tts, "set_speed"):
            raise p.ProtocolError("invalid_event", "this server's voice speed is fixed", event.event_id)
        return
    voices = offered(tts, default)
    if event.voice not in voices:
        raise p.ProtocolError(
            "unknown_voice",
            f"voice {event.voice!r} is not installed on this server; it has {', '.join(voices)}",
            event.event_id,
        )
