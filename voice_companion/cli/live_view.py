"""The live terminal view of a call: what it heard, what it says, latency per turn."""

from __future__ import annotations

import json
import sys

from voice_companion.core.events import (
    AudioChunk,
    ErrorEvent,
    Event,
    Notice,
    ResponseDone,
    ResponseInterrupted,
    SpeechStarted,
    TextDelta,
    TranscriptFinal,
    TurnMetrics,
)


class LiveView:
    def __init__(self, companion_name: str, as_json: bool = False, stream=None) -> None:
        self.name = companion_name
        self.as_json = as_json
        self.out = stream or sys.stdout
        self._speaking = False

    def __call__(self, event: Event) -> None:
        if self.as_json:
            if not isinstance(event, AudioChunk):
                print(json.dumps(event.as_dict(), ensure_ascii=False), file=self.out, flush=True)
            return
        text = self._line(event)
        if text is not None:
            print(text, end="", file=self.out, flush=True)

    def _line(self, event: Event) -> str | None:
        if isinstance(event, SpeechStarted):
            return "\n… listening\n" if self._speaking else None
        if isinstance(event, TranscriptFinal):
            return f"you:  {event.text}\n"
        if isinstance(event, TextDelta):
            first, self._speaking = not self._speaking, True
            return (f"{self.name}: " if first else " ") + event.delta
        if isinstance(event, ResponseInterrupted):
            self._speaking = False
            return f"  [interrupted after {event.played_ms / 1000:.1f} s]\n"
        if isinstance(event, ResponseDone) and event.status != "interrupted":
            self._speaking = False
            return "\n"
        if isinstance(event, TurnMetrics) and event.voice_to_voice_ms is not None:
            return f"  [{event.voice_to_voice_ms:.0f} ms]"
        if isinstance(event, Notice) and event.code != "voice_changed":  # a swap says so itself
            return f"\n[{event.code.replace('_', ' ')}] {event.message}\n"
        if isinstance(event, ErrorEvent):
            return f"\n[error] {event.message}\n"
        return None
