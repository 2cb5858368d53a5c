"""The memory store on PostgreSQL: the second backend, for several servers sharing one
database (`memory.database_url = "postgresql://…"`, docs/scaling.md).

It keeps the SQLite store's contract (types.MemoryStore and the import methods), tested
by the same suite on both (tests/test_memory_store.py): every write is durable when the
call returns (one transaction, committed), ids and ordering as in SQLite (what is lived
takes the next positive id, imported history lies below), and every write transaction
holds the companion's advisory lock, so two processes never interleave one companion's
writes. Search ranks like FTS5's bm25 (see `_ranked`). A lost connection raises
`ConnectionError` (an OSError): the spooling store keeps the turn and retries, as it
does for a full disk.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from voice_companion.companion.memory.postgres_schema import EXTENSION, SCHEMA, SCHEMA_VERSION
from voice_companion.companion.memory.sql_store import FORGOTTEN, SQLMemoryStore, turn_of
from voice_companion.companion.memory.sqlite_schema import (
    COLUMN_DEFAULTS,
    MEMORY_COLUMNS,
    TABLES,
    TURN_COLUMNS,
)
from voice_companion.companion.memory.types import Hit, Memory, Turn
from voice_companion.core.text import cjk_bigrams, has_cjk, keywords, search_stem

_K1, _B = 1.2, 0.75  # FTS5's bm25 defaults
STATS_S = 60.0  # how stale the search statistics may be (a few new turns barely move them)


def schema_name(companion: str) -> str:
    """The companion's schema: its id, lower-case letters, digits and underscores."""
    return "vc_" + re.sub(r"[^a-z0-9_]", "_", companion.lower())[:50]


class PostgresMemoryStore(SQLMemoryStore):
    NEXT_ID = "(SELECT greatest(coalesce(max(id), 0), 0) + 1 FROM {t})"
    NO_LIMIT = None

    def __init__(self, url: str, companion: str) -> None:
        self.url, self.companion = url, companion
        self.schema = schema_name(companion)
        self._lock = threading.RLock()
        self._stats: dict[tuple[str, str], tuple[float, int, float]] = {}
        self._df: dict[tuple[str, str, str], int] = {}
        self._db = self._connect()
        with self._tx():
            self._db.execute(EXTENSION)
            self._db.execute(SCHEMA.format(s=self.schema, version=SCHEMA_VERSION))

    def _connect(self) -> psycopg.Connection:
        """A connection with this companion's schema first on its search path."""
        try:
            db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot reach the memory database ({_first_line(exc)})") from exc
        db.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema)))
        return db

    def _live(self) -> psycopg.Connection:
        """The connection, made again after the server dropped it (a restart, a network cut):
        the spooling store's retry then writes what waited."""
        if self._db.broken:
            self._db.close()
            self._db = self._connect()
        return self._db

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction under the store's lock and the companion's advisory lock."""
        with self._lock, _reachable():
            with self._live().transaction():
                self._run("SELECT pg_advisory_xact_lock(hashtext(?))", (self.schema,))
                yield

    def _rows(self, query: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock, _reachable():
            return self._live().execute(_pg(query), args).fetchall()

    def _run(self, query: str, args: Sequence[Any] = ()) -> list[tuple]:
        """A statement inside a transaction; its rows, if it returns any."""
        cursor = self._db.execute(_pg(query), args)
        return cursor.fetchall() if cursor.description else []

    def _many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows, inside a transaction."""
        if rows:
            with self._db.cursor() as cursor:
                cursor.executemany(_pg(query), rows)

    # -- small named values --------------------------------------------------------

    def set_meta(self, key: str, value: str | None) -> None:
        with self._tx():
            if value is None:
                self._run("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._run(
                    "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (key, value),
                )

    # -- sessions ------------------------------------------------------------------

    # -- turns ---------------------------------------------------------------------

    def add_turn(self, session_id: int, role: str, text: str, interrupted: bool = False) -> Turn:
        now = time.time()
        with self._tx():
            turn_id = int(
                self._run(
                    f"INSERT INTO turns(id, session_id, role, text, time, interrupted, grams) "
                    f"VALUES ({self.NEXT_ID.format(t='turns')}, ?, ?, ?, ?, ?, {_GRAMS}) RETURNING id",
                    (session_id, role, text, now, int(interrupted), _grams(role, text)),
                )[0][0]
            )
        return Turn(turn_id, session_id, role, text, now, interrupted)

    def update_turn(self, turn_id: int, text: str, interrupted: bool) -> None:
        with self._tx():
            self._run(
                f"UPDATE turns SET text = ?, interrupted = ?, grams = {_GRAMS} WHERE id = ?",
                (text, int(interrupted), _grams("user", text), turn_id),
            )
            self._run("DELETE FROM turn_vectors WHERE turn_id = ?", (turn_id,))  # its words changed

    def turns_by_id(self, ids: Sequence[int]) -> list[Turn]:
        if not ids:
            return []
        return [turn_of(r) for r in self._rows(f"SELECT {TURN_COLUMNS} FROM turns WHERE id = ANY(?)", (list(ids),))]

    # -- sentence vectors ----------------------------------------------------------

    def add_vectors(self, vectors: Sequence[tuple[int, bool, bytes]]) -> None:
        with self._tx():
            self._many(
                "INSERT INTO turn_vectors(turn_id, chinese, vector) SELECT ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM turns WHERE id = ?) ON CONFLICT (turn_id) DO UPDATE "
                "SET chinese = EXCLUDED.chinese, vector = EXCLUDED.vector, seq = nextval('turn_vectors_seq_seq')",
                [(turn_id, chinese, blob, turn_id) for turn_id, chinese, blob in vectors],
            )

    # -- imported history ----------------------------------------------------------

    def new_origins(self, origins: Sequence[str]) -> list[str]:
        have = {r[0] for r in self._rows("SELECT origin FROM turns WHERE origin = ANY(?)", (list(origins),))}
        return [o for o in origins if o not in have]

    def add_imported_session(
        self, session_id: int, first_turn: int, source: str, rows: Sequence[tuple[str, str, float, str]]
    ) -> int:
        if not rows:
            return 0
        try:
            with self._tx():
                self._run(
                    "INSERT INTO sessions(id, started, ended, summary, backend, source, learned) "
                    "VALUES (?, ?, ?, '', '', ?, 0)",
                    (session_id, rows[0][2], rows[-1][2], source),
                )
                self._many(
                    f"INSERT INTO turns(id, session_id, role, text, time, interrupted, origin, grams) "
                    f"VALUES (?, ?, ?, ?, ?, 0, ?, {_GRAMS})",
                    [
                        (first_turn + n, session_id, role, text, when, origin, _grams(role, text))
                        for n, (role, text, when, origin) in enumerate(rows)
                    ],
                )
        except psycopg.errors.UniqueViolation:  # another import got there first
            return 0
        return len(rows)

    # -- search --------------------------------------------------------------------

    def search_turns(self, query: str, before_id: int | None = None, limit: int = 20) -> list[Hit]:
        """As the SQLite store: the user's turns sharing its units (trigram substrings),
        and its Chinese two-character words (`grams`); a turn both find keeps its better score."""
        found: dict[int, Hit] = {}
        units = [(_LIKE, _like(u)) for u in dict.fromkeys(search_stem(k) for k in keywords(query))]
        grams = [(_HAS_GRAM, g) for g in cjk_bigrams(query)[:12]]
        for matches in (units, grams):
            for row, score in self._ranked("turns", TURN_COLUMNS, matches, "role = 'user'", before_id):
                if row[0] not in found or score < found[row[0]].bm25:
                    found[row[0]] = Hit(turn_of(row), score)
        return sorted(found.values(), key=lambda h: h.bm25)[:limit]

    def _ranked(
        self, table: str, columns: str, matches: list[tuple[str, str]], scope: str, below: int | None, limit: int = 20
    ) -> list[tuple[tuple, float]]:
        """Rows in `scope` matching any of `matches` ((condition, its parameter)), scored as
        FTS5's bm25 scores them (negative, best lowest; each unit counted once a row): the
        unit's idf over the whole table, weighted down for long rows."""
        if not matches:
            return []
        conditions = [condition for condition, _ in matches]
        params = [param for _, param in matches]
        total, average = self._table_stats(table, scope)
        idf = [math.log(1 + (total - df + 0.5) / (df + 0.5)) for df in self._counts(table, scope, matches)]
        norm = f"({_K1} * (1 - {_B} + {_B} * length(text) / {average}))"
        score = " + ".join(
            f"(CASE WHEN {c} THEN {weight * (_K1 + 1)} ELSE 0 END)" for c, weight in zip(conditions, idf, strict=True)
        )
        rows = self._rows(
            f"SELECT {columns}, -(({score}) / (1 + {norm})) AS s FROM {table} "
            f"WHERE {scope} AND id < ? AND ({' OR '.join(conditions)}) ORDER BY s, id DESC LIMIT ?",
            (*params, below or 2**62, *params, limit),
        )
        return [(row[:-1], float(row[-1])) for row in rows]

    def _table_stats(self, table: str, scope: str) -> tuple[int, float]:
        """Rows and their mean length, read at most every STATS_S: counting 50,000 turns
        took ~40 ms of every question (scripts/bench_recall.py --database)."""
        key = (table, scope)
        cached = self._stats.get(key)
        if cached is None or time.monotonic() - cached[0] > STATS_S:
            total, average = self._rows(f"SELECT count(*), coalesce(avg(length(text)), 1) FROM {table} WHERE {scope}")[
                0
            ]
            cached = self._stats[key] = (time.monotonic(), int(total), float(average) or 1.0)
            self._df.clear()
        return cached[1], cached[2]

    def _counts(self, table: str, scope: str, matches: list[tuple[str, str]]) -> list[int]:
        """How many rows hold each unit (the trigram or grams index answers each; kept
        until the table's stats are read again)."""
        counts = []
        for condition, param in matches:
            key = (table, condition, param)
            if key not in self._df:
                self._df[key] = int(
                    self._rows(f"SELECT count(*) FROM {table} WHERE {scope} AND {condition}", (param,))[0][0]
                )
            counts.append(self._df[key])
        return counts

    # -- memories ------------------------------------------------------------------

    def forget(self, memory_id: int) -> bool:
        with self._tx():
            rows = self._run("DELETE FROM memories WHERE id = ? RETURNING source_turn", (memory_id,))
            if not rows:
                return False
            if rows[0][0] is not None:
                said = [rows[0][0], rows[0][0] + 1]
                self._run("UPDATE turns SET text = ?, grams = NULL WHERE id = ANY(?)", (FORGOTTEN, said))
                self._run("DELETE FROM turn_vectors WHERE turn_id = ANY(?)", (said,))
        return True

    def forget_all(self) -> None:
        """Everything of this companion, its schema dropped and made again empty (no old
        text is left in its tables; PostgreSQL's own files reuse the space)."""
        with self._tx():
            self._run(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.schema)).as_string(self._db))
            self._run(SCHEMA.format(s=self.schema, version=SCHEMA_VERSION))

    def search_memories(self, query: str, limit: int = 20) -> list[Hit]:
        units = [(_LIKE, _like(u)) for u in dict.fromkeys(search_stem(k) for k in keywords(query))]
        ranked = self._ranked("memories", MEMORY_COLUMNS, units, "TRUE", None, limit)
        return [Hit(Memory(*row), score) for row, score in ranked]

    def search_memories_cjk(self, query: str, limit: int = 20) -> list[Hit]:
        grams = cjk_bigrams(query)[:12]
        if not grams:
            return []
        shared = " + ".join("(strpos(text, ?) > 0)::int" for _ in grams)
        rows = self._rows(
            f"SELECT {MEMORY_COLUMNS}, -({shared}) AS s FROM memories WHERE ({shared}) > 0 ORDER BY s, id DESC LIMIT ?",
            (*grams, *grams, limit),
        )
        return [Hit(Memory(*r[:8]), float(r[8])) for r in rows]

    # -- portability ---------------------------------------------------------------

    def import_rows(self, rows: dict[str, Iterable[dict[str, Any]]]) -> None:
        tables = {table: list(of_table) for table, of_table in rows.items()}
        with self._tx():
            for table, columns in TABLES.items():
                names = columns.split(", ")
                values = [[row.get(n, COLUMN_DEFAULTS.get(n)) for n in names] for row in tables.get(table, [])]
                self._many(f"INSERT INTO {table}({columns}) VALUES ({', '.join(['?'] * len(names))})", values)
            said = [t for t in tables.get("turns", []) if t["role"] == "user" and has_cjk(t["text"])]
            self._many(
                f"UPDATE turns SET grams = {_GRAMS} WHERE id = ?", [(_grams("user", t["text"]), t["id"]) for t in said]
            )

    def integrity(self) -> str:
        """ "ok" when every table reads back (PostgreSQL checks its own pages)."""
        for table in (*TABLES, "meta", "turn_vectors"):
            self._rows(f"SELECT count(*) FROM {table}")
        return "ok"

    def close(self) -> None:
        with self._lock:
            self._db.close()


_LIKE = "text ILIKE ?"
_HAS_GRAM = "grams @@ plainto_tsquery('simple', ?)"
_GRAMS = "to_tsvector('simple', ?)"  # what the user said in Chinese, as two-character units


def _grams(role: str, text: str) -> str:
    return " ".join(cjk_bigrams(text)) if role == "user" else ""


def _like(unit: str) -> str:
    return "%" + unit.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _pg(query: str) -> str:
    """The shared SQL's `?` as psycopg's placeholder (no query here holds a literal `?` or `%`)."""
    return query.replace("?", "%s")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        raise ConnectionError(f"the memory database is unreachable ({_first_line(exc)})") from exc
