"""What the companion remembers, and the interface any memory store offers.

One companion's memory is its history (every turn, as it happened) and its memories
(facts about the user, lore from its card, summaries of past sessions). The store is a
Protocol so a shared server database (PostgreSQL) can replace SQLite later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Memory kinds: `fact` (about the user), `lore` (world knowledge from the persona),
# `summary` (one past session), `note` (added or edited by the user).
KINDS = ("fact", "lore", "summary", "note")


@dataclass(frozen=True)
class Turn:
    id: int
    session_id: int
    role: str  # "user" | "assistant"
    text: str
    time: float  # seconds since the epoch
    interrupted: bool = False


@dataclass(frozen=True)
class Memory:
    id: int
    kind: str
    text: str
    importance: float = 0.5  # 0..1: how much it matters to who the user is
    confidence: float = 1.0  # 0..1: how sure the extraction was
    source_turn: int | None = None  # the user turn it came from
    time: float = 0.0  # when it was learned or last confirmed
    key: str = ""  # one slot per key ("name", "home", ...): a newer fact replaces an older one


@dataclass(frozen=True)
class SessionInfo:
    id: int
    started: float
    ended: float | None
    summary: str
    turns: int


@dataclass(frozen=True)
class Hit:
    """A search result with its FTS5 relevance (bm25: lower is better)."""

    item: Turn | Memory
    bm25: float


class MemoryStore(Protocol):
    """One companion's persistent memory. Every write is durable when the call returns."""

    def start_session(self, backend: str = "", owner: str = "") -> int: ...
    def end_session(self, session_id: int, summary: str) -> None: ...
    def sessions(self, limit: int = 10) -> list[SessionInfo]: ...
    def unfinished_sessions(self) -> list[tuple[int, str]]: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str | None) -> None: ...

    def add_turn(self, session_id: int, role: str, text: str, interrupted: bool = False) -> Turn: ...
    def update_turn(self, turn_id: int, text: str, interrupted: bool) -> None: ...
    def turns(self, session_id: int | None = None, before_id: int | None = None, limit: int = 50) -> list[Turn]: ...
    def turn_count(self) -> int: ...
    def search_turns(self, query: str, before_id: int | None = None, limit: int = 20) -> list[Hit]: ...
    def turns_by_id(self, ids: Sequence[int]) -> list[Turn]: ...

    def unembedded_turns(self, limit: int = 64) -> list[Turn]: ...
    def count_unembedded_turns(self) -> int: ...
    def add_vectors(self, vectors: Sequence[tuple[int, bool, bytes]]) -> None: ...
    def vectors_since(self, seq: int, limit: int = 20_000) -> list[tuple[int, int, bool, bytes]]: ...

    def add_memory(
        self,
        kind: str,
        text: str,
        importance: float = 0.5,
        confidence: float = 1.0,
        source_turn: int | None = None,
        key: str = "",
    ) -> Memory: ...
    def update_memory(self, memory_id: int, text: str) -> Memory: ...
    def forget(self, memory_id: int) -> bool: ...
    def forget_all(self) -> None: ...
    def memories(self, kinds: Sequence[str] = KINDS, limit: int | None = None) -> list[Memory]: ...
    def facts_keyed(self, keys: Sequence[str]) -> list[Memory]: ...
    def search_memories(self, query: str, limit: int = 20) -> list[Hit]: ...
    def search_memories_cjk(self, query: str, limit: int = 20) -> list[Hit]: ...

    def export_rows(self) -> dict[str, list[dict[str, Any]]]: ...
    def import_rows(self, rows: dict[str, Iterable[dict[str, Any]]]) -> None: ...
    def close(self) -> None: ...


class ImportStore(MemoryStore, Protocol):
    """A store that takes an imported history (companion/imports/importer.py): SQLite and
    PostgreSQL both are."""

    def new_origins(self, origins: Sequence[str]) -> list[str]: ...
    def reserve_imported(self, sessions: int, turns: int) -> tuple[int, int]: ...
    def add_imported_session(
        self, session_id: int, first_turn: int, source: str, rows: Sequence[tuple[str, str, float, str]]
    ) -> int: ...
    def unlearned_imports(self, limit: int = 100) -> list[int]: ...
    def count_unlearned_imports(self) -> int: ...
    def learn_imported(
        self, session_id: int, summary: str, facts: Sequence[tuple[int, str, str, float, float]]
    ) -> None: ...
    def imported_counts(self) -> dict[str, int]: ...
    def integrity(self) -> str: ...
