"""The memory store with a spool: a turn that cannot be written is kept, retried, and reported.

When the disk fills (SQLite: "database or disk is full") or the file cannot be written,
the conversation must not lose the turn or end the call. `SpoolingStore` wraps any
`MemoryStore`: a failed `add_turn` returns a turn with a provisional (negative) id and
keeps it in memory; every later write, and a timer every `RETRY_S`, retries the spool
in order; updates of spooled turns change the spooled copy. Listeners (the phone
server's connection) hear once per outage, so the user is told; the log says when it
is written after all. Reads pass through: spooled turns are still in the live history.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voice_companion.companion.memory.sqlite_schema import IMPORTED_BELOW
from voice_companion.companion.memory.types import MemoryStore, Turn

log = logging.getLogger(__name__)
WRITE_FAILURES = (sqlite3.DatabaseError, OSError)  # SQLITE_FULL, SQLITE_IOERR, read-only, ENOSPC
RETRY_S = 5.0
NOT_SAVED = (
    "memory_not_saved",
    "your last words could not be saved to the companion's memory ({why}); "
    "they are kept and saving is retried every few seconds: free some disk space",
)
Listener = Callable[[str, str], None]  # (code, message); may be called from any thread


@dataclass
class _Pending:
    provisional: int  # < 0: the id handed out; the real one exists once written
    session_id: int
    role: str
    text: str
    interrupted: bool
    time: float
    real_id: int | None = None  # set for an update of an already written turn


class SpoolingStore:
    def __init__(self, inner: MemoryStore, retry_s: float = RETRY_S) -> None:
        self.inner, self.retry_s = inner, retry_s
        self._pending: list[_Pending] = []
        self._real: dict[int, int] = {}  # provisional id → id in the store
        self._next = -1
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._timer: threading.Timer | None = None
        self.spooled = self.written_late = 0  # the figures docs/reliability.md reports

    @property
    def pending(self) -> int:
        return len(self._pending)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear about outages; returns the function that stops listening."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def add_turn(self, session_id: int, role: str, text: str, interrupted: bool = False) -> Turn:
        with self._lock:
            self._flush()
            if not self._pending:
                try:
                    return self.inner.add_turn(session_id, role, text, interrupted)
                except WRITE_FAILURES as exc:
                    self._outage(exc)
            entry = _Pending(self._next, session_id, role, text, interrupted, time.time())
            self._next -= 1
            self._spool(entry)
            return Turn(entry.provisional, session_id, role, text, entry.time, interrupted)

    def update_turn(self, turn_id: int, text: str, interrupted: bool) -> None:
        with self._lock:
            turn_id = self._real.get(turn_id, turn_id)
            for entry in self._pending:
                if entry.provisional == turn_id or (entry.real_id is not None and entry.real_id == turn_id):
                    entry.text, entry.interrupted = text, interrupted
                    return
            self._flush()
            if not self._pending:
                try:
                    return self.inner.update_turn(turn_id, text, interrupted)
                except WRITE_FAILURES as exc:
                    self._outage(exc)
            self._spool(_Pending(0, 0, "", text, interrupted, time.time(), real_id=turn_id))

    def add_memory(
        self,
        kind: str,
        text: str,
        importance: float = 0.5,
        confidence: float = 1.0,
        source_turn: int | None = None,
        key: str = "",
    ):
        """Facts point at their turn: a spooled one's real id, or none while it waits."""
        if source_turn is not None and IMPORTED_BELOW < source_turn < 0:  # not an imported turn's
            source_turn = self._real.get(source_turn)
        return self.inner.add_memory(kind, text, importance, confidence, source_turn, key)

    def retry(self) -> int:
        """Write what waits now; returns how many entries still wait."""
        with self._lock:
            self._flush()
            return len(self._pending)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._flush()
            if self._pending:
                log.error("%d memory writes could not be saved before closing (disk full?)", len(self._pending))
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # reads and the rest of MemoryStore pass through
        return getattr(self.inner, name)

    # -- the spool -----------------------------------------------------------------

    def _spool(self, entry: _Pending) -> None:
        self._pending.append(entry)
        self.spooled += 1
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Timer(self.retry_s, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        if self.retry():
            with self._lock:
                self._timer = threading.Timer(self.retry_s, self._on_timer)
                self._timer.daemon = True
                self._timer.start()

    def _flush(self) -> None:
        if not self._pending:
            return
        try:
            while self._pending:
                entry = self._pending[0]
                if entry.real_id is not None:
                    self.inner.update_turn(entry.real_id, entry.text, entry.interrupted)
                else:
                    turn = self.inner.add_turn(entry.session_id, entry.role, entry.text, entry.interrupted)
                    self._real[entry.provisional] = turn.id
                self._pending.pop(0)
                self.written_late += 1
        except WRITE_FAILURES:
            return
        log.warning("the memory store is writable again: every kept turn is saved")

    def _outage(self, exc: BaseException) -> None:
        code, text = NOT_SAVED
        message = text.format(why=" ".join(str(exc).split())[:80] or type(exc).__name__)
        log.warning("%s", message)
        for listener in list(self._listeners):
            try:
                listener(code, message)
            except Exception:  # noqa: BLE001 - a listener's failure must not lose the turn
                log.exception("memory outage listener failed")
