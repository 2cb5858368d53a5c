"""The LLM interface shared by every backend.

A backend streams text deltas for a chat and stops as soon as the consumer stops
iterating (``break`` or ``aclose()``): that is how a barge-in cancels generation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

# Re-exported: backends and their callers take the message type from the LLM interface.
from voice_companion.core.messages import ChatMessage as ChatMessage
from voice_companion.core.text import asks_or_recalls


@dataclass(frozen=True)
class PromptUsage:
    """How a reply's prompt was paid for: tokens prefilled now, and those reused from cache."""

    processed: int
    cached: int


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings for one reply; defaults suit short spoken answers."""

    max_tokens: int = 80
    temperature: float = 0.7
    top_p: float = 0.9
    repeat_penalty: float = 1.15
    # how many of the latest tokens the repeat penalty looks back on (llama.cpp's own
    # default is 64; the embedded backend only: hosted APIs reject the field)
    repeat_last_n: int = 64
    # once the reply has this many words it ends at its next sentence end (0: off;
    # conversation/reply_length.py): max_tokens alone cut replies mid-sentence
    wrap_up_words: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def for_prompt(self, messages: Sequence[ChatMessage]) -> GenerationOptions:
        """These options, for this prompt: a question whose message carries what memory
        recalled for it is answered at RECALLED_ANSWER_TEMPERATURE, because sampled words
        replace the recalled ones (small, 6 tries each, the turn quoted next to the
        question: "Thursday at nine" came back 3 of 6 at 0.7, 3 of 6 at 0.3, 6 of 6 at 0.1)."""
        last = messages[-1] if messages else None
        if last is None or last.role != "user" or not last.context or not asks_or_recalls(last.content):
            return self
        return replace(self, temperature=min(self.temperature, RECALLED_ANSWER_TEMPERATURE))


RECALLED_ANSWER_TEMPERATURE = 0.1


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

    @property
    def last_usage(self) -> PromptUsage | None:
        """How the latest finished reply's prompt was paid for (benchmarks, metrics)."""
        ...

    @property
    def supports_saved_state(self) -> bool:
        """Can write the KV state of a prompt prefix to a file and read it back (embedded
        llama.cpp); a remote server relies on its own prefix cache instead."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        gate: CpuGate | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield text deltas; a local backend pauses while `gate` is held.

        Raises `LLMError` with a one-line message on failure."""
        ...

    async def prefill(
        self, messages: Sequence[ChatMessage], should_stop: Callable[[], bool] | None = None, ahead: bool = False
    ) -> bool:
        """Warm the backend's prompt cache with a prefix (no-op where unsupported).

        The work goes in short steps and stops between two when `should_stop` says so
        or a live request waits, or skipped while busy: False then; True when done. `ahead`: a
        prefix for later (a coming window roll), kept apart from the live prompt."""
        ...

    async def save_state(self, messages: Sequence[ChatMessage], state_dir: Path) -> bool:
        """Prefill `messages` and write their state under `state_dir` (False: unsupported)."""
        ...

    async def restore_state(self, messages: Sequence[ChatMessage], state_dir: Path, ahead: bool = False) -> bool:
        """Load the saved state of exactly this prefix; False when there is none that fits.
        `ahead`: into the spare slot, where the coming window is prefilled (see prefill)."""
        ...

    def interrupt(self) -> None:
        """The process is exiting: requests in flight end at their next step."""
        ...

    def close(self) -> None: ...


class LLMBase:
    """What a backend without a prompt cache of its own does: nothing, successfully."""

    name = "llm"
    supports_saved_state = False
    last_usage: PromptUsage | None = None  # of the latest finished reply (benchmarks, metrics)

    async def prefill(
        self, messages: Sequence[ChatMessage], should_stop: Callable[[], bool] | None = None, ahead: bool = False
    ) -> bool:
        return True

    async def save_state(self, messages: Sequence[ChatMessage], state_dir: Path) -> bool:
        return False

    async def restore_state(self, messages: Sequence[ChatMessage], state_dir: Path, ahead: bool = False) -> bool:
        return False

    def interrupt(self) -> None:
        return None

    def close(self) -> None:
        return None


class ScriptedLine(LLMBase):
    """A "backend" that says one fixed line: the greeting goes through the same
    clause → speech → playback path as a reply, so barge-in cuts it the same way."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None, gate: CpuGate | None = None
    ) -> AsyncGenerator[str, None]:
        yield self.text
