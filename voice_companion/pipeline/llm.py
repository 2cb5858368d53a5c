"""The LLM interface shared by every backend.

A backend streams text deltas for a chat and stops as soon as the consumer stops
iterating (``break`` or ``aclose()``): that is how a barge-in cancels generation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol, Sequence


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings for one reply; defaults suit short spoken answers."""

    max_tokens: int = 80
    temperature: float = 0.7
    top_p: float = 0.9
    repeat_penalty: float = 1.15
    stop: tuple[str, ...] = field(default_factory=tuple)


class CpuGate:
    """Lets a clause's synthesis have the CPU while generation waits.

    On 2 cores, llama.cpp generating while Piper synthesises slows both (llama.cpp's
    threads wait on each other when one is descheduled); the user hears nothing until
    the first clause is ready, and later clauses play for seconds, so generation
    pauses at its next token while the gate is held.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait(self, cancelled: threading.Event, max_wait_s: float = 1.0) -> None:
        """Block a generation thread while held: until released, `cancelled`, or
        `max_wait_s` (a safety net: a hold must only ever cost a short pause)."""
        deadline = time.monotonic() + max_wait_s
        while not self._open.wait(0.02) and not cancelled.is_set() and time.monotonic() < deadline:
            pass


class LLMBackend(Protocol):
    """Anything that streams a chat reply token by token."""

    name: str

    def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None,
        gate: CpuGate | None = None,
    ) -> AsyncIterator[str]:
        """Yield text deltas; a local backend pauses while `gate` is held.

        Raises `LLMError` with a one-line message on failure."""
        ...

    async def prefill(self, messages: Sequence[ChatMessage]) -> None:
        """Warm the backend's prompt cache with a prefix (no-op where unsupported)."""
        ...

    def close(self) -> None: ...


class ScriptedLine:
    """A "backend" that says one fixed line: the greeting goes through the same
    clause → speech → playback path as a reply, so barge-in cuts it the same way."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    async def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None,
                     gate: CpuGate | None = None) -> AsyncIterator[str]:
        yield self.text

    async def prefill(self, messages: Sequence[ChatMessage]) -> None:
        return None

    def close(self) -> None:
        return None
