"""The PostgreSQL schema of a companion's memory: the SQLite store's tables, one schema
per companion, pg_trgm indexes for full-text search.

Why one schema per companion: the SQL reads as the SQLite store's (no companion column
in every query), `memory forget` can drop everything of one companion, and several
servers can share one database. Search: pg_trgm's GIN index serves `ILIKE '%unit%'` for
the same units FTS5's trigram tokenizer matches (English stems, Chinese trigrams), and
what the user said in Chinese is also kept as its two-character units in a tsvector
(`grams`), as SQLite's `turns_cjk` does. Migrations: `SCHEMA_VERSION` in `meta`; every
statement here is idempotent, so opening a store brings an older schema up to date.
"""

SCHEMA_VERSION = "1"
EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.sessions(id BIGINT PRIMARY KEY, started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION, summary TEXT NOT NULL DEFAULT '', backend TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', learned INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS {s}.turns(id BIGINT PRIMARY KEY, session_id BIGINT NOT NULL, role TEXT NOT NULL,
    text TEXT NOT NULL, time DOUBLE PRECISION NOT NULL, interrupted INTEGER NOT NULL DEFAULT 0,
    origin TEXT NOT NULL DEFAULT '', grams TSVECTOR);
CREATE INDEX IF NOT EXISTS turns_by_session ON {s}.turns(session_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS turns_by_origin ON {s}.turns(origin) WHERE origin != '';
CREATE INDEX IF NOT EXISTS turns_words ON {s}.turns USING gin (text gin_trgm_ops) WHERE role = 'user';
CREATE INDEX IF NOT EXISTS turns_grams ON {s}.turns USING gin (grams) WHERE role = 'user';
CREATE TABLE IF NOT EXISTS {s}.memories(id BIGINT PRIMARY KEY, kind TEXT NOT NULL, text TEXT NOT NULL,
    importance DOUBLE PRECISION NOT NULL, confidence DOUBLE PRECISION NOT NULL, source_turn BIGINT,
    time DOUBLE PRECISION NOT NULL, key TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS memories_by_key ON {s}.memories(kind, key);
CREATE INDEX IF NOT EXISTS memories_words ON {s}.memories USING gin (text gin_trgm_ops);
-- sentence vectors (a cache, not exported); `seq` in commit order: writes take the
-- companion's advisory lock, so a live index that loads "since seq" misses nothing
CREATE TABLE IF NOT EXISTS {s}.turn_vectors(seq BIGSERIAL PRIMARY KEY,
    turn_id BIGINT NOT NULL UNIQUE REFERENCES {s}.turns(id) ON DELETE CASCADE,
    chinese BOOLEAN NOT NULL, vector BYTEA NOT NULL);
INSERT INTO {s}.meta VALUES ('schema', '{version}') ON CONFLICT (key) DO NOTHING;
"""
