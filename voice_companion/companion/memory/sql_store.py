"""What both memory stores do in the same SQL: the SQLite file (sqlite_store.py) and
PostgreSQL (postgres_store.py) share these methods, written once in SQLite's `?` style
(the PostgreSQL store reads each `?` as its `%s`). Each store gives `_rows` (a read),
`_run` (a statement inside `_tx()`), `_tx` (one transaction: durable on return) and the
few spellings its dialect needs (`NEXT_ID`, `NO_LIMIT`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from voice_companion.companion.memory.sqlite_schema import IMPORTED_BELOW, MEMORY_COLUMNS, TABLES, TURN_COLUMNS
from voice_companion.companion.memory.types import KINDS, Memory, SessionInfo, Turn

FORGOTTEN = "[forgotten]"


class SQLMemoryStore:
    # what is lived here takes the next positive id, whatever an import put below
    NEXT_ID = "(SELECT max(coalesce(max(id), 0), 0) + 1 FROM {t})"
    NO_LIMIT: int | None = -1

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    # -- small named values --------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- sessions ------------------------------------------------------------------

    def start_session(self, backend: str = "", owner: str = "") -> int:
        with self._tx():
            return int(
                self._run(
                    f"INSERT INTO sessions(id, started, backend, owner) VALUES ({self.NEXT_ID.format(t='sessions')}, "
                    "?, ?, ?) RETURNING id",
                    (time.time(), backend, owner),
                )[0][0]
            )

    def unfinished_sessions(self) -> list[tuple[int, str]]:
        """(id, owner) of every session that was never ended: open now, or cut off."""
        return [(r[0], r[1]) for r in self._rows("SELECT id, owner FROM sessions WHERE ended IS NULL ORDER BY id")]

    def end_session(self, session_id: int, summary: str) -> None:
        with self._tx():
            self._run("UPDATE sessions SET ended = ?, summary = ? WHERE id = ?", (time.time(), summary, session_id))

    def sessions(self, limit: int = 10) -> list[SessionInfo]:
        rows = self._rows(
            "SELECT s.id, s.started, s.ended, s.summary, (SELECT count(*) FROM turns t "
            "WHERE t.session_id = s.id) FROM sessions s ORDER BY s.id DESC LIMIT ?",
            (limit,),
        )
        return [SessionInfo(*row) for row in rows]

    # -- turns ---------------------------------------------------------------------

    def turns(self, session_id: int | None = None, before_id: int | None = None, limit: int = 50) -> list[Turn]:
        """The latest `limit` turns (of one session, before a turn), oldest first."""
        where, args = ["TRUE"], []
        if before_id is not None:
            where.append("id < ?")
            args.append(before_id)
        if session_id is not None:
            where.append("session_id = ?")
            args.append(session_id)
        rows = self._rows(
            f"SELECT {TURN_COLUMNS} FROM turns WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, limit)
        )
        return [turn_of(r) for r in reversed(rows)]

    def turn_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM turns")[0][0])

    # -- sentence vectors (companion/memory/vectors.py) ----------------------------

    def unembedded_turns(self, limit: int = 64) -> list[Turn]:
        """The user's turns that have no vector yet, newest first (recent ones matter most)."""
        rows = self._rows(
            f"SELECT {', '.join('t.' + c for c in TURN_COLUMNS.split(', '))} FROM turns t "
            "WHERE t.role = 'user' AND t.text != ? AND NOT EXISTS "
            "(SELECT 1 FROM turn_vectors v WHERE v.turn_id = t.id) ORDER BY t.id DESC LIMIT ?",
            (FORGOTTEN, limit),
        )
        return [turn_of(r) for r in rows]

    def count_unembedded_turns(self) -> int:
        rows = self._rows(
            "SELECT count(*) FROM turns t WHERE t.role = 'user' AND t.text != ? AND NOT EXISTS "
            "(SELECT 1 FROM turn_vectors v WHERE v.turn_id = t.id)",
            (FORGOTTEN,),
        )
        return int(rows[0][0])

    def vectors_since(self, seq: int, limit: int = 20_000) -> list[tuple[int, int, bool, bytes]]:
        """(seq, turn id, said in Chinese, vector bytes) written after `seq`, oldest first."""
        return [
            (int(s), int(t), bool(c), bytes(v))
            for s, t, c, v in self._rows(
                "SELECT seq, turn_id, chinese, vector FROM turn_vectors WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            )
        ]

    # -- imported history (companion/imports/importer.py) -------------------------

    def reserve_imported(self, sessions: int, turns: int) -> tuple[int, int]:
        """The first ids of a block of `sessions` sessions and `turns` turns below every
        id here and below IMPORTED_BELOW: imported history is older than what was lived."""
        low_session = min(IMPORTED_BELOW, self._rows("SELECT min(id) FROM sessions")[0][0] or 0)
        low_turn = min(IMPORTED_BELOW, self._rows("SELECT min(id) FROM turns")[0][0] or 0)
        return low_session - sessions, low_turn - turns

    def unlearned_imports(self, limit: int = 100) -> list[int]:
        """Imported sessions whose summary and facts are still to be made, oldest first."""
        return [r[0] for r in self._rows("SELECT id FROM sessions WHERE learned = 0 ORDER BY id LIMIT ?", (limit,))]

    def count_unlearned_imports(self) -> int:
        return int(self._rows("SELECT count(*) FROM sessions WHERE learned = 0")[0][0])

    def learn_imported(
        self, session_id: int, summary: str, facts: Sequence[tuple[int, str, str, float, float]]
    ) -> None:
        """An imported session's summary and the facts stated in it ((turn id, text, key,
        importance, confidence), dated when said), in one transaction. A keyed fact never
        replaces one held already: what was lived here, or imported before, is kept."""
        with self._tx():
            known = {r[0].lower() for r in self._run("SELECT text FROM memories WHERE kind = 'fact'")}
            held = {r[0] for r in self._run("SELECT key FROM memories WHERE kind = 'fact' AND key != ''")}
            for turn_id, text, key, importance, confidence in facts:
                if (key and key in held) or (not key and text.lower() in known):
                    continue
                self._run(
                    f"INSERT INTO memories({MEMORY_COLUMNS}) VALUES ({self.NEXT_ID.format(t='memories')}, 'fact', "
                    "?, ?, ?, ?, (SELECT time FROM turns WHERE id = ?), ?)",
                    (text, importance, confidence, turn_id, turn_id, key),
                )
                known.add(text.lower())
                held.add(key)
            self._run("UPDATE sessions SET summary = ?, learned = 1 WHERE id = ?", (summary, session_id))

    def imported_counts(self) -> dict[str, int]:
        """Imported turns by source."""
        rows = self._rows(
            "SELECT s.source, count(*) FROM turns t JOIN sessions s ON s.id = t.session_id "
            "WHERE s.source != '' GROUP BY s.source"
        )
        return {source: int(count) for source, count in rows}

    # -- memories ------------------------------------------------------------------

    def add_memory(
        self,
        kind: str,
        text: str,
        importance: float = 0.5,
        confidence: float = 1.0,
        source_turn: int | None = None,
        key: str = "",
    ) -> Memory:
        """A new memory; with a `key`, it replaces the memory that held that slot."""
        if kind not in KINDS:
            raise ValueError(f"unknown memory kind {kind!r}")
        now = time.time()
        with self._tx():
            if key:
                self._run("DELETE FROM memories WHERE kind = ? AND key = ?", (kind, key))
            memory_id = int(
                self._run(
                    f"INSERT INTO memories({MEMORY_COLUMNS}) VALUES ({self.NEXT_ID.format(t='memories')}, "
                    "?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (kind, text, importance, confidence, source_turn, now, key),
                )[0][0]
            )
        return Memory(memory_id, kind, text, importance, confidence, source_turn, now, key)

    def update_memory(self, memory_id: int, text: str) -> Memory:
        """The user's own correction: full confidence, kept as written."""
        with self._tx():
            rows = self._run(
                f"UPDATE memories SET text = ?, confidence = 1.0, time = ? WHERE id = ? RETURNING {MEMORY_COLUMNS}",
                (text, time.time(), memory_id),
            )
        if not rows:
            raise KeyError(memory_id)
        return Memory(*rows[0])

    def memories(self, kinds: Sequence[str] = KINDS, limit: int | None = None) -> list[Memory]:
        marks = ", ".join("?" * len(kinds))
        rows = self._rows(
            f"SELECT {MEMORY_COLUMNS} FROM memories WHERE kind IN ({marks}) ORDER BY id DESC LIMIT ?",
            (*kinds, self.NO_LIMIT if limit is None else limit),
        )
        return [Memory(*r) for r in reversed(rows)]

    def facts_keyed(self, keys: Sequence[str]) -> list[Memory]:
        """The facts held in these slots ("work", "home:sister"), newest first."""
        if not keys:
            return []
        marks = ", ".join("?" * len(keys))
        rows = self._rows(
            f"SELECT {MEMORY_COLUMNS} FROM memories WHERE kind = 'fact' AND key IN ({marks}) ORDER BY id DESC", keys
        )
        return [Memory(*r) for r in rows]

    # -- portability ---------------------------------------------------------------

    def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        return {
            table: [
                dict(zip(columns.split(", "), row, strict=True))
                for row in self._rows(f"SELECT {columns} FROM {table} ORDER BY id")
            ]
            for table, columns in TABLES.items()
        }


def turn_of(row: tuple) -> Turn:
    return Turn(int(row[0]), int(row[1]), row[2], row[3], float(row[4]), bool(row[5]))
