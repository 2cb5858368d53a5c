"""Each call's own voice over the server's shared pool of loaded voices.

A phone asks for a voice with `session.update` (`session.audio.output.voice`, `speed`);
only voices installed on the server are offered and accepted. One call's swap never
changes another call's voice; they share the loaded models, not the choice.
"""

from __future__ import annotations

from voice_companion.engines.tts import TextToSpeech
from voice_companion.transports.websocket import protocol as p


def current(tts: TextToSpeech, default: str) -> str:
    control = tts.voice_control
    return control.active if control is not None else default


def offered(tts: TextToSpeech, default: str) -> list[str]:
    """The voices this call may switch to: its own, then every installed catalog voice."""
    control = tts.voice_control
    return control.installed() if control is not None else [default]


def check(tts: TextToSpeech, default: str, event: p.SessionUpdate) -> None:
    """Refuse a voice the server cannot speak with, before anything changes."""
    if event.voice is None or event.voice == current(tts, default):
        if event.speed is not None and tts.voice_control is None:
            raise p.ProtocolError("invalid_event", "this server's voice speed is fixed", event.event_id)
        return
    voices = offered(tts, default)
    if event.voice not in voices:
        raise p.ProtocolError(
            "unknown_voice",
            f"voice {event.voice!r} is not installed on this server; it has {', '.join(voices)}",
            event.event_id,
        )
