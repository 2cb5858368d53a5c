"""A remote LLM that fails like a person would: retry once, then say so in a few words.

Chosen behaviour when an OpenAI-compatible server fails (docs/reliability.md):
- before the first word (connection refused or reset, a 5xx): one retry after
  `RETRY_DELAY_S`, which rides out a server restart or a dropped keep-alive; if it
  fails again the reply fails with the backend's actionable `llm_failed` message;
- mid-reply (the server died, the connection dropped, the stream stalled): what came
  is kept and the companion ends with `CUT_OFF` — short and honest — instead of
  stopping mid-word in silence; the history records exactly that.
No fallback to the embedded model: loading a GGUF mid-call costs seconds and a GB of
memory on the machines this runs on, and the user chose the remote model on purpose.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path

from voice_companion.core.errors import LLMError
from voice_companion.engines.llm import ChatMessage, CpuGate, GenerationOptions, LLMBackend, PromptUsage

log = logging.getLogger(__name__)
RETRY_DELAY_S = 0.5
CUT_OFF = " Sorry, I lost my train of thought: my language model stopped answering."


class ResilientLLM:
    """Wraps a backend; everything but `stream` is the inner backend's (an LLMBackend, not
    an LLMBase: its `last_usage` and `supports_saved_state` are the inner one's, read-only)."""

    def __init__(self, inner: LLMBackend, retry_delay_s: float = RETRY_DELAY_S) -> None:
        self.inner, self.retry_delay_s = inner, retry_delay_s
        self.name = inner.name
        self.cuts = self.retries = 0  # what it survived, for docs/reliability.md's figures

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None, gate: CpuGate | None = None
    ) -> AsyncGenerator[str, None]:
        for attempt in (1, 2):
            yielded = False
            try:
                async for text in self.inner.stream(messages, options, gate):
                    yielded = True
                    yield text
                return
            except LLMError as exc:
                if yielded:
                    self.cuts += 1
                    log.warning("%s; the companion says so", exc)
                    yield CUT_OFF
                    return
                if attempt == 2 or not exc.retryable:  # not a timeout (it waited already) or a 4xx
                    raise
                self.retries += 1
                log.warning("%s; retrying once in %.1f s", exc, self.retry_delay_s)
                await asyncio.sleep(self.retry_delay_s)

    @property
    def supports_saved_state(self) -> bool:
        return self.inner.supports_saved_state

    @property
    def last_usage(self) -> PromptUsage | None:
        return self.inner.last_usage

    async def prefill(
        self, messages: Sequence[ChatMessage], should_stop: Callable[[], bool] | None = None, ahead: bool = False
    ) -> bool:
        return await self.inner.prefill(messages, should_stop, ahead)

    async def save_state(self, messages: Sequence[ChatMessage], state_dir: Path) -> bool:
        return await self.inner.save_state(messages, state_dir)

    async def restore_state(self, messages: Sequence[ChatMessage], state_dir: Path, ahead: bool = False) -> bool:
        return await self.inner.restore_state(messages, state_dir, ahead)

    def interrupt(self) -> None:
        self.inner.interrupt()

    def close(self) -> None:
        self.inner.close()
