"""Embedded llama.cpp (via xllamacpp) as an `LLMBackend`.

Why xllamacpp: it ships prebuilt CPU wheels and exposes llama.cpp's server core
(chat templates, prompt-prefix cache, parallel slots) in-process; llama-cpp-python
has no wheel and its default build crashed on our reference CPU.

Generation runs in a worker thread; deltas cross to asyncio through a queue. The
consumer stopping (barge-in) sets an event that the token callback checks, and
returning True from that callback makes llama.cpp stop generating at once.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from voice_companion.errors import LLMError, ModelNotAvailable
from voice_companion.pipeline.llm import ChatMessage, CpuGate, GenerationOptions

_DONE = object()


class LlamaCppLLM:
    """A GGUF model loaded once and shared; requests are serialised per slot."""

    def __init__(
        self,
        model_path: str | Path,
        context_tokens: int = 4096,
        threads: int = 2,
        parallel: int = 1,
        generation_threads: int | None = None,
        defaults: GenerationOptions | None = None,
        prompt_cache_mib: int = 256,
    ) -> None:
        import xllamacpp

        path = Path(model_path)
        if not path.is_file():
            raise ModelNotAvailable(f"LLM model file not found: {path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context_tokens * parallel
        params.n_parallel = parallel
        params.cpuparams.n_threads = generation_threads or threads
        params.cpuparams_batch.n_threads = threads
        params.cache_prompt = True
        # llama.cpp keeps the KV state of earlier prompts in RAM so a caller whose
        # prefix was evicted from the slot need not prefill it again. Its default cap
        # is 8 GiB: a 30-minute soak grew the server by 5 GB, ~15 MB per call.
        params.cache_ram_mib = prompt_cache_mib
        params.verbosity = -1
        # xllamacpp also opens an HTTP listener on 127.0.0.1; a random key keeps
        # other local programs from using it.
        params.api_keys = [secrets.token_hex(16)]
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ModelNotAvailable(
                f"llama.cpp could not load {path.name}: the file is corrupt or not a GGUF "
                f"model; delete it and install or download it again"
            ) from exc
        self.name = f"embedded:{path.name}"
        self.defaults = defaults or GenerationOptions()
        self._parallel = parallel
        self._slot_guards: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._waiting = 0  # requests queued for a slot (read by generation threads)

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None,
        gate: CpuGate | None = None,
    ) -> AsyncIterator[str]:
        request = self._request(messages, options or self.defaults, stream=True)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: dict) -> bool:
            for choice in chunk.get("choices", ()):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)
            if gate is not None and not self._waiting:  # never pause while other calls queue
                gate.wait(stop)
            return stop.is_set()

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # noqa: BLE001 - crosses the thread boundary
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        slots = await self._acquire()
        worker = loop.run_in_executor(None, run)
        # The slot is free as soon as llama.cpp stops, not when the consumer has spoken
        # every clause: a speculative reply holding its audio, or a slow synthesis,
        # must not keep other calls waiting for the model.
        worker.add_done_callback(lambda _: slots.release())
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise LLMError(f"the embedded model failed: {item}")
                yield item
        finally:
            stop.set()
            await asyncio.shield(worker)

    async def prefill(self, messages: Sequence[ChatMessage]) -> None:
        """Process the prompt once so the next turn reuses its KV cache. Best effort: when
        the model is busy (another call on a server), skip rather than queue — a queued
        prefill would delay that call's reply and evict its cache for nothing."""
        if self._guard().locked() or self._waiting:
            return
        request = self._request(messages, GenerationOptions(max_tokens=1), stream=False)
        slots = await self._acquire()
        try:
            await asyncio.to_thread(self._server.handle_chat_completions, request)
        finally:
            slots.release()

    async def _acquire(self) -> asyncio.Semaphore:
        """Wait for a free slot (counted in `_waiting` meanwhile); the caller releases it."""
        slots = self._guard()
        self._waiting += 1
        try:
            await slots.acquire()
        finally:
            self._waiting -= 1
        return slots

    def _guard(self) -> asyncio.Semaphore:
        """One guard per event loop: the model is shared by callers on different loops."""
        loop = asyncio.get_running_loop()
        if loop not in self._slot_guards:
            self._slot_guards = {k: v for k, v in self._slot_guards.items() if not k.is_closed()}
            self._slot_guards[loop] = asyncio.Semaphore(self._parallel)
        return self._slot_guards[loop]

    def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> dict:
        """A blocking, non-streamed completion with llama.cpp's own timings (benchmarks)."""
        return self._server.handle_chat_completions(self._request(messages, options, stream=False))

    def close(self) -> None:
        self._server = None  # freed by xllamacpp's destructor

    @staticmethod
    def _request(messages: Sequence[ChatMessage], o: GenerationOptions, stream: bool) -> dict:
        return {
            "messages": [m.as_dict() for m in messages],
            "stream": stream,
            "max_tokens": o.max_tokens,
            "temperature": o.temperature,
            "top_p": o.top_p,
            "repeat_penalty": o.repeat_penalty,
            "stop": list(o.stop),
            "cache_prompt": True,
        }
