"""Typed, immutable events that a live session emits to its transport.

Names follow the OpenAI Realtime API where the concept exists, so the WebSocket
protocol can forward them as they are. Every response-scoped event carries the
response id; a transport drops audio whose response was interrupted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class SpeechStarted(Event):
    type: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: float


@dataclass(frozen=True)
class SpeechStopped(Event):
    type: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: float


@dataclass(frozen=True)
class TranscriptPartial(Event):
    """A speculative transcript taken when the user paused; may still change."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    text: str
    language: str


@dataclass(frozen=True)
class TranscriptFinal(Event):
    type: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    text: str
    language: str


@dataclass(frozen=True)
class ResponseCreated(Event):
    type: ClassVar[str] = "response.created"
    response_id: str


@dataclass(frozen=True)
class TextDelta(Event):
    type: ClassVar[str] = "response.output_text.delta"
    response_id: str
    delta: str


@dataclass(frozen=True, eq=False)
class AudioChunk(Event):
    """int16 mono samples of one response, numbered from 0 per response."""

    type: ClassVar[str] = "response.output_audio.delta"
    response_id: str
    seq: int
    samples: np.ndarray
    sample_rate: int

    @property
    def duration_ms(self) -> float:
        return 1000 * len(self.samples) / self.sample_rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "response_id": self.response_id,
            "seq": self.seq,
            "sample_rate": self.sample_rate,
            "samples": len(self.samples),
        }


@dataclass(frozen=True)
class ResponseInterrupted(Event):
    """The user cut in: playback stopped after `played_ms` of this response."""

    type: ClassVar[str] = "response.interrupted"
    response_id: str
    played_ms: float
    spoken_text: str


@dataclass(frozen=True)
class PlaybackPaused(Event):
    """Speech began over this reply: it is held (a barge-in, or the user going on with
    their turn) until `PlaybackResumed`, `ResponseInterrupted` or a retraction."""

    type: ClassVar[str] = "response.output_audio.paused"
    response_id: str


@dataclass(frozen=True)
class PlaybackResumed(Event):
    """It was not a bid for the turn (noise, "mhm", its own echo): the reply goes on."""

    type: ClassVar[str] = "response.output_audio.resumed"
    response_id: str


@dataclass(frozen=True)
class ResponseDone(Event):
    type: ClassVar[str] = "response.done"
    response_id: str
    text: str
    # "completed" | "interrupted" | "failed" | "retracted" (the user went on with the
    # turn it answered: it never happened; the turn's full answer follows)
    status: str = "completed"


@dataclass(frozen=True)
class TurnMetrics(Event):
    """Per-turn latency, ms. voice_to_voice: end of user speech -> first reply sample out."""

    type: ClassVar[str] = "metrics.turn"
    response_id: str
    endpoint_delay_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_clause_ms: float | None = None
    tts_first_audio_ms: float | None = None
    voice_to_voice_ms: float | None = None
    speculative_hit: bool = False
    # prompt tokens the LLM had to prefill for this reply, and those its cache had
    prefill_tokens: int | None = None
    cached_tokens: int | None = None


@dataclass(frozen=True)
class ErrorEvent(Event):
    type: ClassVar[str] = "error"
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should know that is not an error (ours): e.g. no voice for
    the language they speak, or the voice changed."""

    type: ClassVar[str] = "notice"
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
