"""The memory store in one SQLite file per companion (WAL, FTS5 trigram search).

Why SQLite: a single owner-only file the user can copy, durable after every commit
(WAL + synchronous=FULL: a `kill -9` loses nothing committed), and FTS5's trigram
tokenizer searches Chinese as well as English without a word segmenter. One
connection serves the call's thread and the background memory worker under a lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from voice_companion.companion.memory.sql_store import FORGOTTEN, SQLMemoryStore, turn_of
from voice_companion.companion.memory.sqlite_schema import (
    CJK_BACKFILL,
    COLUMN_DEFAULTS,
    INDEXES,
    MEMORY_COLUMNS,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    TRIGGERS,
    TURN_COLUMNS,
)
from voice_companion.companion.memory.types import Hit, Memory, Turn
from voice_companion.core.text import cjk_bigrams, fts_query

__all__ = ["FORGOTTEN", "SQLiteMemoryStore"]


class SQLiteMemoryStore(SQLMemoryStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # owner-only before any data
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.create_function("cjk_grams", 1, _cjk_grams, deterministic=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            "BEGIN IMMEDIATE;"
            + SCHEMA
            + TRIGGERS.format(t="turns", when_new="WHEN new.role = 'user'", when_old="WHEN old.role = 'user'")
            + TRIGGERS.format(t="memories", when_new="", when_old="")
            + f"INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
        )
        self._migrate()
        for suffix in ("-wal", "-shm"):
            if Path(f"{self.path}{suffix}").exists():
                os.chmod(f"{self.path}{suffix}", 0o600)

    def _migrate(self) -> None:
        with self._tx():
            for table, column, definition in MIGRATIONS:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            self._db.execute(INDEXES)
            if self._db.execute("SELECT 1 FROM meta WHERE key = 'cjk_index'").fetchone() is None:
                self._db.execute("DELETE FROM turns_cjk")
                self._db.execute(CJK_BACKFILL)
                self._db.execute("INSERT INTO meta VALUES ('cjk_index', '1')")

    def _tx(self):
        return _Transaction(self._db, self._lock)

    # -- small named values (the prompt window's bounds) ---------------------------

    def set_meta(self, key: str, value: str | None) -> None:
        with self._tx():
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self._db.execute(sql, args).fetchall()

    # -- sessions ------------------------------------------------------------------

    # -- turns ---------------------------------------------------------------------

    def add_turn(self, session_id: int, role: str, text: str, interrupted: bool = False) -> Turn:
        now = time.time()
        with self._tx():
            turn_id = _inserted_id(
                self._db.execute(
                    f"INSERT INTO turns(id, session_id, role, text, time, interrupted) "
                    f"VALUES ({self.NEXT_ID.format(t='turns')}, ?, ?, ?, ?, ?)",
                    (session_id, role, text, now, int(interrupted)),
                )
            )
        return Turn(turn_id, session_id, role, text, now, interrupted)

    def update_turn(self, turn_id: int, text: str, interrupted: bool) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE turns SET text = ?, interrupted = ? WHERE id = ?", (text, int(interrupted), turn_id)
            )

    # -- sentence vectors (companion/memory/vectors.py) ----------------------------

    def add_vectors(self, vectors: Sequence[tuple[int, bool, bytes]]) -> None:
        """(turn id, said in Chinese, float16 bytes), in one transaction; a turn gone
        meanwhile is skipped."""
        with self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO turn_vectors(turn_id, chinese, vector) SELECT ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM turns WHERE id = ?)",
                [(turn_id, int(chinese), blob, turn_id) for turn_id, chinese, blob in vectors],
            )

    def turns_by_id(self, ids: Sequence[int]) -> list[Turn]:
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        return [turn_of(r) for r in self._rows(f"SELECT {TURN_COLUMNS} FROM turns WHERE id IN ({marks})", tuple(ids))]

    # -- imported history (companion/imports/importer.py) -------------------------

    def new_origins(self, origins: Sequence[str]) -> list[str]:
        """Those of `origins` (imported turns' ids in their export) not imported yet."""
        have: set[str] = set()
        for start in range(0, len(origins), 500):
            chunk = origins[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            have.update(r[0] for r in self._rows(f"SELECT origin FROM turns WHERE origin IN ({marks})", chunk))
        return [o for o in origins if o not in have]

    def add_imported_session(
        self, session_id: int, first_turn: int, source: str, rows: Sequence[tuple[str, str, float, str]]
    ) -> int:
        """One imported session and its new turns (role, text, time, origin) at the given
        ids, in one transaction, to be summarised later (`learn_imported`). If one of the
        turns was imported meanwhile (two imports at once), nothing is added. Returns how
        many turns it added."""
        if not rows:
            return 0
        try:
            with self._tx():
                self._db.execute(
                    "INSERT INTO sessions(id, started, ended, summary, backend, source, learned) "
                    "VALUES (?, ?, ?, '', '', ?, 0)",
                    (session_id, rows[0][2], rows[-1][2], source),
                )
                self._db.executemany(
                    "INSERT INTO turns(id, session_id, role, text, time, interrupted, origin) "
                    "VALUES (?, ?, ?, ?, ?, 0, ?)",
                    [
                        (first_turn + n, session_id, role, text, when, origin)
                        for n, (role, text, when, origin) in enumerate(rows)
                    ],
                )
        except sqlite3.IntegrityError:  # the unique origin (or id) says another import got there first
            return 0
        return len(rows)

    def search_turns(self, query: str, before_id: int | None = None, limit: int = 20) -> list[Hit]:
        """The user's turns that share words with `query`, best first: trigrams, and the
        two-character units of Chinese; a turn both find keeps its better bm25."""
        columns = ", ".join("t." + c for c in TURN_COLUMNS.split(", "))
        found: dict[int, Hit] = {}
        grams = cjk_bigrams(query)[:12]
        for table, match in (
            ("turns_fts", fts_query(query)),
            ("turns_cjk", " OR ".join(f'"{g}"' for g in grams)),
        ):
            if not match:
                continue
            rows = self._rows(
                f"SELECT {columns}, bm25({table}) AS s FROM {table} JOIN turns t ON t.id = {table}.rowid "
                f"WHERE {table} MATCH ? AND {table}.rowid < ? ORDER BY s LIMIT ?",
                (match, before_id or 2**62, limit),
            )
            for r in rows:
                if r[0] not in found or r[6] < found[r[0]].bm25:
                    found[r[0]] = Hit(turn_of(r[:6]), r[6])
        return sorted(found.values(), key=lambda h: h.bm25)[:limit]

    # -- memories ------------------------------------------------------------------

    def forget(self, memory_id: int) -> bool:
        """Delete a memory and blank the exchange it came from, so search cannot bring it back."""
        rows = self._rows("SELECT source_turn FROM memories WHERE id = ?", (memory_id,))
        if not rows:
            return False
        with self._tx():
            self._db.execute("DELETE FROM memories WHERE id = ?", (memory_id,))
            if rows[0][0] is not None:
                self._db.execute(
                    "UPDATE turns SET text = ? WHERE id IN (?, ?)", (FORGOTTEN, rows[0][0], rows[0][0] + 1)
                )
        return True

    def forget_all(self) -> None:
        with self._tx():
            for table in ("turn_vectors", "memories", "turns", "sessions"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key != 'schema'")
        with self._lock:  # leave no old text in free pages or the WAL
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def search_memories(self, query: str, limit: int = 20) -> list[Hit]:
        match = fts_query(query)
        if not match:
            return []
        rows = self._rows(
            f"SELECT {', '.join('m.' + c for c in MEMORY_COLUMNS.split(', '))}, bm25(memories_fts) AS s "
            "FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid "
            "WHERE memories_fts MATCH ? ORDER BY s LIMIT ?",
            (match, limit),
        )
        return [Hit(Memory(*r[:8]), r[8]) for r in rows]

    def search_memories_cjk(self, query: str, limit: int = 20) -> list[Hit]:
        """Memories sharing Chinese two-character words with the query (LIKE: the memory
        table is small); bm25 here is minus the number of shared words."""
        grams = cjk_bigrams(query)[:12]
        if not grams:
            return []
        score = " + ".join("(instr(text, ?) > 0)" for _ in grams)
        rows = self._rows(
            f"SELECT {MEMORY_COLUMNS}, -({score}) AS s FROM memories WHERE s < 0 ORDER BY s, id DESC LIMIT ?",
            (*grams, limit),
        )
        return [Hit(Memory(*r[:8]), float(r[8])) for r in rows]

    # -- portability ---------------------------------------------------------------

    def import_rows(self, rows: dict[str, Iterable[dict[str, Any]]]) -> None:
        """Add exported rows with their ids, so sources and sessions still line up."""
        with self._tx():
            for table, columns in TABLES.items():
                names = columns.split(", ")
                self._db.executemany(
                    f"INSERT INTO {table}({columns}) VALUES ({', '.join('?' * len(names))})",
                    ([row.get(n, COLUMN_DEFAULTS.get(n)) for n in names] for row in rows.get(table, [])),
                )

    def integrity(self) -> str:
        return self._rows("PRAGMA integrity_check")[0][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT under the store's lock; ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> None:
        self.lock.acquire()
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *_) -> None:
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK" if kind else "COMMIT")
        finally:
            self.lock.release()


def _inserted_id(cursor: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just added: `lastrowid` is None only before any INSERT."""
    row_id = cursor.lastrowid
    assert row_id is not None
    return row_id


def _cjk_grams(text: str | None) -> str:
    """What `turns_cjk` indexes of a line: its Chinese two-character units, space-separated."""
    return " ".join(cjk_bigrams(text or ""))
