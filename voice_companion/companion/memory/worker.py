"""Learning from the conversation off the live path, in one background thread.

The thread exists only while there is work: a server keeps dozens of resumable
conversations, and an idle thread for each one added up (the soak's 54 → 86 threads).

After each turn: pattern facts at once (instant, never invented). LLM extraction
costs the model's time and, for an embedded model, its prompt cache, so it runs
after the turn only on a server backend, and only while the call leaves the LLM idle;
otherwise the turns wait for the end of the session, when nobody is waiting on a
reply. At the end, the session gets its episodic summary.

The LLM's requests run on the process's one event loop (the one the conversation
records its turns on: the LLM's HTTP client and slot guard live there), handed over
with `run_coroutine_threadsafe`; only when that loop is gone (a server's last
conversations, closed after it stopped) does the thread run them on a loop of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from voice_companion.companion.memory import facts
from voice_companion.companion.memory.fact_llm import extract_with_llm
from voice_companion.companion.memory.summaries import summarize_session
from voice_companion.companion.memory.types import MemoryStore, Turn
from voice_companion.companion.memory.vectors import VectorIndex, embed_pending, embed_turns
from voice_companion.core.errors import CompanionError
from voice_companion.engines.llm import LLMBackend

log = logging.getLogger(__name__)
T = TypeVar("T")
MODES = ("after_turn", "session_end", "off")
END_BUDGET_S = 8.0  # LLM extraction at session end never holds an exit longer
END_MAX_TURNS = 12
EMBED_AT_END_S = 1.0  # vectors for older turns at a session's end (~75 a second on 2 cores)
IDLE_EXIT_S = 5.0  # the thread ends after this long without a job; the next job starts one


class MemoryWorker:
    def __init__(
        self,
        store: MemoryStore,
        llm: LLMBackend | None = None,
        mode: str = "off",
        busy: Callable[[], bool] = lambda: False,
        vectors: VectorIndex | None = None,
    ) -> None:
        self.store, self.llm, self.busy = store, llm, busy
        self.vectors = vectors  # each turn gets its vector here; a backlog at the session's end
        self.mode = mode if llm is not None else "off"
        self._known = {m.text.lower() for m in store.memories(("fact", "note"))}
        self._pending: list[tuple[int, str]] = []  # user turns awaiting LLM extraction
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()  # guards starting and retiring the thread
        self._thread: threading.Thread | None = None
        self._ended = False
        self._loop: asyncio.AbstractEventLoop | None = None  # where the LLM's requests run

    def after_turn(self, turn_id: int, user_text: str) -> None:
        self._note_loop()
        self._submit(("turn", turn_id, user_text))

    def finish(self, session_id: int, timeout: float = END_BUDGET_S + 5) -> None:
        """End of session: pending extraction, the episodic summary, then the thread stops.

        Waits for it, except on the LLM's own loop: the thread needs that loop for its
        requests, so waiting there would hold both (it then finishes on its own)."""
        on_loop = self._note_loop()
        thread = self._submit(("end", session_id, ""))
        if thread is not None and not on_loop:
            thread.join(timeout)

    def _note_loop(self) -> bool:
        """Remember the running loop, if any (the LLM's); True when called on it."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _submit(self, job: tuple[str, int, str]) -> threading.Thread | None:
        with self._lock:
            if self._ended:
                return None  # the session is over: nothing more is learned from it
            self._ended = job[0] == "end"
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="memory-worker", daemon=True)
                self._thread.start()
            return self._thread

    def wait_idle(self) -> None:
        """Block until every queued turn is learned from (tests, benchmarks)."""
        self._jobs.join()

    def _run(self) -> None:
        while True:
            try:
                kind, ident, text = self._jobs.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:  # a job submitted now sees no thread and starts one
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            try:
                if kind == "turn":
                    self._learn(ident, text)
                else:
                    self._end(ident)
            except Exception:  # noqa: BLE001 - learning must never end a call
                log.exception("memory worker failed on a %s job", kind)
            finally:
                self._jobs.task_done()
            if kind == "end":
                return

    def _learn(self, turn_id: int, text: str) -> None:
        if self.vectors is not None:
            embedder, turn = self.vectors.embedder, Turn(turn_id, 0, "user", text, 0.0)
            self._embed(lambda: embed_turns(self.store, embedder, [turn]))
        for fact in facts.extract(text):
            self._remember(fact, turn_id)
        if not facts.states_something(text):
            return
        if self.mode == "after_turn" and self._llm_learn(turn_id, text, self.busy):
            return
        if self.mode != "off":
            self._pending.append((turn_id, text))

    def _llm_learn(self, turn_id: int, text: str, busy: Callable[[], bool]) -> bool:
        """True when done; False when skipped because the conversation needed the LLM."""
        if busy():
            return False
        assert self.llm is not None  # without an LLM the mode is "off": nothing comes here
        try:
            found = self._on_llm_loop(extract_with_llm(self.llm, text, busy))
        except CompanionError as exc:
            log.warning("LLM fact extraction failed: %s", exc)
            return True
        if found is None:
            return False
        for fact in found:
            self._remember(fact, turn_id)
        return True

    def _on_llm_loop(self, coroutine: Coroutine[Any, Any, T]) -> T | None:
        """Run `coroutine` on the LLM's loop and wait for it (None: it did not finish)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return asyncio.run(coroutine)  # no loop left: this thread's is the only one
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout=END_BUDGET_S * 2)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()  # the loop is stopping or stuck: this fact waits for patterns
            return None

    def _remember(self, fact: facts.Fact, turn_id: int) -> None:
        if not fact.key and fact.text.lower() in self._known:
            return
        self.store.add_memory("fact", fact.text, fact.importance, fact.confidence, turn_id, fact.key)
        self._known.add(fact.text.lower())

    def _end(self, session_id: int) -> None:
        deadline = time.monotonic() + END_BUDGET_S
        for turn_id, text in self._pending[-END_MAX_TURNS:]:
            if time.monotonic() > deadline:
                break
            self._llm_learn(turn_id, text, lambda: time.monotonic() > deadline)
        turns = self.store.turns(session_id, limit=2000)
        self.store.end_session(session_id, summarize_session(turns) if turns else "")
        if self.vectors is not None:  # older turns without a vector: as many as fit in a second
            until = time.monotonic() + EMBED_AT_END_S
            embedder = self.vectors.embedder
            self._embed(lambda: embed_pending(self.store, embedder, stop=lambda: time.monotonic() > until))

    def _embed(self, work: Callable[[], object]) -> None:
        """Vectors are a cache: failing to write one (a full disk) costs recall, not the call."""
        try:
            work()
        except (CompanionError, sqlite3.Error, OSError) as exc:
            log.info("a turn's vector was not saved (%s): it is made later", exc)


def finish_orphaned_sessions(store: MemoryStore) -> int:
    """Finish the sessions a killed process left open: pattern facts and the summary.

    Every turn was saved when it happened, so only the end-of-session work is missing;
    it is redone here, when the companion next opens (LLM extraction is not: it would
    put seconds on that start). A session whose process still runs (another call on
    a server, a desk call beside it) is left alone. Returns how many were finished."""
    finished = 0
    for session_id, owner in store.unfinished_sessions():
        if _alive(owner):
            continue
        turns = store.turns(session_id, limit=2000)
        known = {m.text.lower() for m in store.memories(("fact", "note"))}
        for turn in turns:
            if turn.role != "user":
                continue
            for fact in facts.extract(turn.text):
                if fact.key or fact.text.lower() not in known:
                    store.add_memory("fact", fact.text, fact.importance, fact.confidence, turn.id, fact.key)
                    known.add(fact.text.lower())
        store.end_session(session_id, summarize_session(turns) if turns else "")
        finished += 1
    if finished:
        log.info("finished %d earlier session(s) that ended without their summary", finished)
    return finished


def _alive(owner: str) -> bool:
    """Is the process named by `owner` ("host:pid") still running? Unknown owners are not."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
