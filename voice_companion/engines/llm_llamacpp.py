"""Embedded llama.cpp (via xllamacpp) as an `LLMBackend`.

Why xllamacpp: it ships prebuilt CPU wheels and exposes llama.cpp's server core
(chat templates, prompt-prefix cache, parallel slots) in-process; llama-cpp-python
has no wheel and its default build crashed on our reference CPU.

Generation runs in a thread of its own (not the event loop's executor, which refuses
work once the interpreter is shutting down: the end-of-session work of every `chat`
and `reply` used to fail that way); deltas cross to asyncio through a queue. The
consumer stopping (barge-in, Ctrl+C) sets an event that the callback checks after each
token and each batch of the prompt read; returning True makes llama.cpp stop there.

Saved prefix states (llm_state.py) go through llama.cpp's slot save/restore, which
xllamacpp exposes only on its loopback HTTP listener (guarded by a random API key).

One KV slot more than requests run at once: the spare one is where the next window
(a roll) is prefilled in the background. With a single slot that work evicted the
live prompt, and llama.cpp kept the evicted slot instead of reloading the live state
from its RAM cache whenever the two shared more than half their tokens (persona and
profile): a 2,300-token prompt was prefilled again on the next turn (8.5 s on `tiny`,
scripts/bench_returning.py). Each request goes to the slot whose last prompt shares
the longest beginning with it; background steps never touch the live slot, and no
request is given a slot another reply is generating in (`llm.parallel` > 1).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from voice_companion.core.errors import LLMError, ModelNotAvailable
from voice_companion.engines import llm_state
from voice_companion.engines.llm import ChatMessage, CpuGate, GenerationOptions, LLMBase, PromptUsage
from voice_companion.engines.slot_guard import SlotGuard

log = logging.getLogger(__name__)
_DONE = object()
# A prefill off the critical path (the next turn's prefix, a window roll prepared in the
# background, the user's words so far) works in steps of about this long, each sized from
# the last one's measured speed, so a live turn that needs the model waits at most one
# step. One 1,400-token prefill in a single request put 17-24 s on the turn queued behind
# it (scripts/bench_returning.py, small, 40-turn call).
# 1 s, not shorter: steps under ~50 tokens read at ~27 ms a token on `small` instead of
# ~19 (0.5 s steps made a cold 1,400-token prompt take 38 s instead of 26 s).
PREFILL_STEP_S = 1.0
PREFILL_FIRST_STEP = 64  # tokens, before any speed is known (~1.2 s on small, ~0.3 s on tiny)
PREFILL_STEP_RANGE = (32, 512)
# Without `should_stop` (the prompt a session opens with, the words so far) nobody waits
# for the steps to end except a live request, which they still give way to: read at full
# speed, in llama.cpp's own batch sizes.
PREFILL_BIG_STEP = 512
# llama.cpp reads a prompt in batches of this many tokens and, with `return_progress`,
# reports after each one: a request whose caller has gone (Ctrl+C, a hang-up, barge-in)
# ends within a batch (~2 s on `small`) instead of after the whole prompt (its default
# 2,048: 20-35 s). Reading speed measured the same as with 512 and 2,048 on 2 cores.
PROMPT_BATCH_TOKENS = 128


def model_identity(path: Path, slot_tokens: int, slots: int) -> str:
    """Which model a saved state belongs to: name, size and a digest of its head and tail
    (a whole-file hash of 1 GB would cost seconds at every start), the runtime, and the
    KV layout (llama.cpp cannot restore a state into slots of another shape)."""
    import xllamacpp

    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return f"{path.name}|{size}|{digest.hexdigest()[:32]}|xllamacpp {xllamacpp.__version__}|{slots}x{slot_tokens}"


_running: set[threading.Thread] = set()  # threads inside llama.cpp now
_models: weakref.WeakSet[LlamaCppLLM] = weakref.WeakSet()
EXIT_WAIT_S = 10.0  # per thread; an interrupted request ends within a step (~0.5-2 s)


@atexit.register
def _end_at_exit() -> None:
    """No thread may be inside llama.cpp when the interpreter goes away: a command that
    exited while a request was still being read died with SIGSEGV. Interrupted, each
    ends at its next step."""
    for model in list(_models):
        model.interrupt()
    for thread in list(_running):
        thread.join(EXIT_WAIT_S)


def _in_thread(fn: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run `fn` in a daemon thread of its own; the future resolves on the caller's loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - crosses the thread boundary
            result, error = None, exc
        finally:
            _running.discard(threading.current_thread())
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is gone: nobody waits for this any more

    thread = threading.Thread(target=run, name="llama-cpp", daemon=True)
    _running.add(thread)
    thread.start()
    return future


class LlamaCppLLM(LLMBase):
    """A GGUF model loaded once and shared; requests are serialised per slot."""

    supports_saved_state = True

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
        # The prompt tokens each KV slot holds (one more slot than parallel requests: the
        # spare one takes background work such as the next window, so the live prompt stays).
        self._slot_tokens: list[list[int]] = [[] for _ in range(parallel + 1)]
        self._live = 0  # the slot of the latest live request
        self._running: set[int] = set()  # slots a reply is being generated in now
        params.n_ctx = context_tokens * len(self._slot_tokens)
        params.n_parallel = len(self._slot_tokens)
        params.cpuparams.n_threads = generation_threads or threads
        params.cpuparams_batch.n_threads = threads
        params.cache_prompt = True
        params.n_batch = PROMPT_BATCH_TOKENS
        # llama.cpp keeps the KV state of earlier prompts in RAM so a caller whose
        # prefix was evicted from the slot need not prefill it again. Its default cap
        # is 8 GiB: a 30-minute soak grew the server by 5 GB, ~15 MB per call.
        params.cache_ram_mib = prompt_cache_mib
        params.verbosity = -1
        # Slot files are written here (owner-only), then moved into the companion's folder.
        self._slot_dir = Path(tempfile.mkdtemp(prefix="vc-llm-slots-"))
        params.slot_save_path = str(self._slot_dir) + os.sep  # llama.cpp appends the name as is
        # xllamacpp also opens an HTTP listener on 127.0.0.1; a random key keeps
        # other local programs from using it.
        self._api_key = secrets.token_hex(16)
        params.api_keys = [self._api_key]
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ModelNotAvailable(
                f"llama.cpp could not load {path.name}: the file is corrupt or not a GGUF "
                f"model; delete it and install or download it again"
            ) from exc
        self.name = f"embedded:{path.name}"
        self.path = path
        self._context_tokens = context_tokens
        self._identity: str | None = None
        self.defaults = defaults or GenerationOptions()
        self._parallel = parallel
        self._slots = SlotGuard(parallel)  # shared by the live loop and the memory worker's
        self._interrupted = threading.Event()  # the process is exiting: see `interrupt`
        _models.add(self)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        gate: CpuGate | None = None,
    ) -> AsyncGenerator[str, None]:
        request = self._request(messages, options or self.defaults, stream=True)
        self.last_usage = None
        loop = asyncio.get_running_loop()
        slots = await self._acquire()
        try:  # a slot no other running request uses, chosen once a permit is held
            slot = request["id_slot"] = await self._live_slot(messages)
        except BaseException:
            slots.release()
            raise
        self._running.add(slot)
        tokens = self._slot_tokens[slot]
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        unread = [0]  # prompt tokens llama.cpp had not read yet, as it last reported

        def on_chunk(chunk: dict) -> bool:
            if progress := chunk.get("prompt_progress"):  # a batch of the prompt read: a chance to stop
                total, cached = int(progress.get("total", 0)), int(progress.get("cache", 0))
                unread[0] = total - int(progress.get("processed", 0))  # `processed` counts the cache
                # known before the first token: a reply that ends early (wrap_up_words) has no timings
                self.last_usage = PromptUsage(total - cached, cached)
                return self._stopping(stop)
            unread[0] = 0
            if timings := chunk.get("timings"):  # the last chunk: what the prompt cost
                self.last_usage = PromptUsage(int(timings.get("prompt_n", 0)), int(timings.get("cache_n", 0)))
            for choice in chunk.get("choices", ()):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)
            if gate is not None and not self._slots.waiting:  # never pause while other calls queue
                gate.wait(stop)
            return self._stopping(stop)

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
                if unread[0] > 0:  # stopped while reading the prompt: the slot holds only its start
                    self._slot_tokens[slot] = tokens[: max(0, len(tokens) - unread[0])]
            except Exception as exc:  # noqa: BLE001 - crosses the thread boundary
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = _in_thread(run)

        def free(_: object) -> None:
            self._running.discard(slot)
            slots.release()

        # The slot is free as soon as llama.cpp stops, not when the consumer has spoken
        # every clause: a speculative reply holding its audio, or a slow synthesis,
        # must not keep other calls waiting for the model.
        worker.add_done_callback(free)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise LLMError(f"the embedded model failed: {item}")
                yield item
        finally:
            stop.set()
            await asyncio.shield(worker)

    async def prefill(
        self, messages: Sequence[ChatMessage], should_stop: Callable[[], bool] | None = None, ahead: bool = False
    ) -> bool:
        """Process the prompt so a later request reuses its KV cache. Best effort: when the
        model is busy (another call on a server), skip rather than queue.

        It goes in steps (about PREFILL_STEP_S with `should_stop`, else PREFILL_BIG_STEP
        tokens) from what the slot already holds, and gives way between two when
        `should_stop` says so or a request waits (False then). `ahead`: a prefix for later
        (the coming window), built in the spare KV slot so the live prompt stays put."""
        if self._busy():
            return False  # not done: a "done" here once marked an unprepared window ready
        tokens = await _in_thread(lambda: self._tokens(messages))
        slot = self._spare_slot(tokens) if ahead else self._best_slot(tokens)
        if not ahead:
            self._live = slot
        done = _shared_length(tokens, self._slot_tokens[slot])
        step = PREFILL_FIRST_STEP if should_stop is not None else PREFILL_BIG_STEP
        while done < len(tokens):
            if (should_stop is not None and should_stop()) or self._busy() or self._interrupted.is_set():
                return False
            end = min(len(tokens), done + step)
            request = {"prompt": tokens[:end], "n_predict": 0, "cache_prompt": True, "id_slot": slot}
            # Held from the start of the step: a request that runs meanwhile evicts it.
            self._slot_tokens[slot] = tokens[:end]
            reply = await self._in_slot(functools.partial(self._server.handle_completions, request))
            step = _next_step(reply, end - done, step) if should_stop is not None else PREFILL_BIG_STEP
            done = end
        return True

    async def save_state(self, messages: Sequence[ChatMessage], state_dir: Path) -> bool:
        """Write the prefix's state for the next session. What the slot lacks of it (usually
        nothing) is read first in prefill's short steps, so a caller that gives up, such as a
        command or a server exiting, never waits for a whole long prompt."""
        if not await self.prefill(messages):
            return False  # busy or stopped: the next session prefills instead
        return await self._in_slot(lambda: self._save(messages, state_dir))

    async def restore_state(self, messages: Sequence[ChatMessage], state_dir: Path, ahead: bool = False) -> bool:
        """Load the saved state of exactly this prefix into the live slot (milliseconds),
        or with `ahead` into the spare one, as the start of the coming window."""
        if self._busy():
            return False  # another call is using the slot; its cache serves this one too
        return await self._in_slot(lambda: self._restore(messages, state_dir, ahead))

    def _save(self, messages: Sequence[ChatMessage], state_dir: Path) -> bool:
        tokens = self._tokens(messages)
        slot = self._best_slot(tokens)
        if not tokens or _shared_length(tokens, self._slot_tokens[slot]) < len(tokens):
            return False  # another request took the slot since the prefill
        name = f"save-{secrets.token_hex(8)}.bin"
        reply = self._http(f"/slots/{slot}?action=save", {"filename": name})
        if reply is None:
            return False
        llm_state.install(
            state_dir,
            self.identity,
            self._slot_dir / name,
            llm_state.prefix_digest(self._render(messages)),
            int(reply.get("n_saved", 0)),
        )
        return True

    def _restore(self, messages: Sequence[ChatMessage], state_dir: Path, ahead: bool = False) -> bool:
        text = self._render(messages)
        slot = next(i for i in range(len(self._slot_tokens)) if i != self._live) if ahead else self._live
        saved = llm_state.usable(state_dir, self.identity, llm_state.prefix_digest(text))
        if saved is None:
            return False
        link = self._slot_dir / f"restore-{secrets.token_hex(8)}.bin"
        os.symlink(saved.resolve(), link)
        try:
            if self._http(f"/slots/{slot}?action=restore", {"filename": link.name}) is None:
                return False
        finally:
            link.unlink(missing_ok=True)
        self._slot_tokens[slot] = self._tokens(messages)
        return True

    async def _live_slot(self, messages: Sequence[ChatMessage]) -> int:
        """The slot for a live request (see `_claim_live`)."""
        tokens = await _in_thread(lambda: self._tokens(messages))
        return self._claim_live(tokens)

    def _claim_live(self, tokens: list[int]) -> int:
        """The best slot for `tokens`, now holding them: the live slot from now on."""
        best = self._best_slot(tokens)
        self._slot_tokens[best], self._live = tokens, best
        return best

    def _idle_slots(self) -> list[int]:
        """Slots no running reply is generating in (with parallel replies, another caller's
        slot must not be taken from under it); there is always one more slot than replies."""
        return [i for i in range(len(self._slot_tokens)) if i not in self._running] or [self._live]

    def _best_slot(self, tokens: list[int]) -> int:
        """The idle slot whose prompt shares the longest beginning with `tokens` (the live one on a tie)."""
        return max(self._idle_slots(), key=lambda i: (_shared_length(tokens, self._slot_tokens[i]), i == self._live))

    def _spare_slot(self, tokens: list[int]) -> int:
        """Where background work goes: the best-matching idle slot that is not the live one."""
        others = [i for i in self._idle_slots() if i != self._live] or self._idle_slots()
        return max(others, key=lambda i: _shared_length(tokens, self._slot_tokens[i]))

    def _render(self, messages: Sequence[ChatMessage]) -> str:
        reply = self._http("/apply-template", {"messages": [m.as_dict() for m in messages]})
        if reply is None:
            raise LLMError("the embedded model could not render its chat template")
        return reply["prompt"]

    def _tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt's tokens, as llama.cpp will see them (its template, its tokenizer)."""
        reply = self._http("/tokenize", {"content": self._render(messages)})
        return list(reply["tokens"]) if reply else []

    def _http(self, path: str, body: dict) -> dict | None:
        """One request to xllamacpp's loopback listener; None (logged once) on failure."""
        try:
            response = httpx.post(
                f"{self._server.listening_address}{path}",
                json=body,
                timeout=120,
                headers={"Authorization": f"Bearer {self._api_key}"},
            )
        except httpx.HTTPError as exc:
            log.warning("llama.cpp %s failed: %s", path.split("?")[0], exc)
            return None
        if response.status_code != 200:
            log.warning("llama.cpp refused %s: %s", path, response.text[:200])
            return None
        return response.json()

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = model_identity(self.path, self._context_tokens, len(self._slot_tokens))
        return self._identity

    def _busy(self) -> bool:
        return self._slots.locked() or bool(self._slots.waiting)

    async def _in_slot(self, work: Callable[[], Any]) -> Any:
        """Run blocking llama.cpp work in a thread once a request slot is free."""
        slots = await self._acquire()
        try:
            return await _in_thread(work)
        finally:
            slots.release()

    async def _acquire(self) -> SlotGuard:
        """Wait for a free slot (counted in `SlotGuard.waiting` meanwhile); the caller releases it."""
        await self._slots.acquire()
        return self._slots

    def interrupt(self) -> None:
        """The process is exiting: every request ends at its next step (a reply stops, a
        prompt is read no further) and a new one ends at once, so that no thread is left
        inside llama.cpp when the user asked to stop."""
        self._interrupted.set()

    def _stopping(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._interrupted.is_set()

    def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> dict:
        """A blocking, non-streamed completion with llama.cpp's own timings (benchmarks)."""
        return self._server.handle_chat_completions(self._request(messages, options, stream=False))

    def close(self) -> None:
        self._server = None  # freed by xllamacpp's destructor
        shutil.rmtree(self._slot_dir, ignore_errors=True)

    @staticmethod
    def _request(messages: Sequence[ChatMessage], o: GenerationOptions, stream: bool) -> dict:
        return {
            "messages": [m.as_dict() for m in messages],
            "stream": stream,
            "max_tokens": o.max_tokens,
            "temperature": o.temperature,
            "top_p": o.top_p,
            "repeat_penalty": o.repeat_penalty,
            "repeat_last_n": o.repeat_last_n,
            "stop": list(o.stop),
            "cache_prompt": True,
            "return_progress": stream,  # a chunk after each batch of the prompt: see PROMPT_BATCH_TOKENS
        }


def _shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two prompts share from the start."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _next_step(reply: Any, tokens: int, step: int) -> int:
    """The next step's length: PREFILL_STEP_S at the speed llama.cpp just reported."""
    timings = reply.get("timings", {}) if isinstance(reply, dict) else {}
    processed, ms = timings.get("prompt_n", 0), timings.get("prompt_ms", 0.0)
    if processed < max(4, tokens // 2) or ms <= 0:  # mostly cached already: no speed to go by
        return min(PREFILL_STEP_RANGE[1], step * 2)
    low, high = PREFILL_STEP_RANGE
    return max(low, min(high, int(PREFILL_STEP_S * 1000 * processed / ms)))
