"""The SQLite schema of a companion's memory: sessions, turns, memories, FTS5 indexes.

Full-text search uses FTS5's trigram tokenizer: it needs no word segmenter, so Chinese
is searched as well as English (a query needs 3+ characters per term). Most Chinese words
are two characters, which trigrams cannot match ("我是什么时候拔的智齿？" found nothing of
"我今天去医院拔了智齿", scripts/bench_recall.py), so what the user said in Chinese is also
indexed as its two-character units (`turns_cjk`, written by `cjk_grams()`, a function
each connection that writes registers).
"""

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL,
    summary TEXT NOT NULL DEFAULT '', backend TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS turns(id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL, role TEXT NOT NULL,
    text TEXT NOT NULL, time REAL NOT NULL, interrupted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS turns_by_session ON turns(session_id, id);
CREATE TABLE IF NOT EXISTS memories(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, text TEXT NOT NULL,
    importance REAL NOT NULL, confidence REAL NOT NULL, source_turn INTEGER, time REAL NOT NULL,
    key TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS memories_by_key ON memories(kind, key);
CREATE VIRTUAL TABLE IF NOT EXISTS turns_fts USING fts5(text, content='turns', content_rowid='id', tokenize='trigram');
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts
    USING fts5(text, content='memories', content_rowid='id', tokenize='trigram');
CREATE VIRTUAL TABLE IF NOT EXISTS turns_cjk USING fts5(grams, tokenize='unicode61');
CREATE TRIGGER IF NOT EXISTS turns_cjk_ai AFTER INSERT ON turns
    WHEN new.role = 'user' AND cjk_grams(new.text) != '' BEGIN
    INSERT INTO turns_cjk(rowid, grams) VALUES (new.id, cjk_grams(new.text)); END;
CREATE TRIGGER IF NOT EXISTS turns_cjk_ad AFTER DELETE ON turns BEGIN
    DELETE FROM turns_cjk WHERE rowid = old.id; END;
CREATE TRIGGER IF NOT EXISTS turns_cjk_au AFTER UPDATE OF text ON turns WHEN new.role = 'user' BEGIN
    DELETE FROM turns_cjk WHERE rowid = old.id;
    INSERT INTO turns_cjk(rowid, grams) SELECT new.id, cjk_grams(new.text) WHERE cjk_grams(new.text) != ''; END;
-- What the user said, as sentence vectors for recall by meaning (engines/embeddings.py):
-- a cache, not exported; `seq` lets a live index load only what is new. A turn edited or
-- deleted loses its vector (and gets a fresh one the next time turns are embedded).
CREATE TABLE IF NOT EXISTS turn_vectors(seq INTEGER PRIMARY KEY, turn_id INTEGER NOT NULL UNIQUE,
    chinese INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS turn_vectors_ad AFTER DELETE ON turns BEGIN
    DELETE FROM turn_vectors WHERE turn_id = old.id; END;
CREATE TRIGGER IF NOT EXISTS turn_vectors_au AFTER UPDATE OF text ON turns BEGIN
    DELETE FROM turn_vectors WHERE turn_id = old.id; END;
"""
# A file made before turns_cjk existed has its Chinese turns indexed once, when opened.
CJK_BACKFILL = """INSERT INTO turns_cjk(rowid, grams)
    SELECT id, cjk_grams(text) FROM turns WHERE role = 'user' AND cjk_grams(text) != ''"""
# Only what the user said is searched: their words are the facts; replies can be wrong.
TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS {t}_ai AFTER INSERT ON {t} {when_new} BEGIN
    INSERT INTO {t}_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS {t}_ad AFTER DELETE ON {t} {when_old} BEGIN
    INSERT INTO {t}_fts({t}_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
CREATE TRIGGER IF NOT EXISTS {t}_au AFTER UPDATE OF text ON {t} {when_new} BEGIN
    INSERT INTO {t}_fts({t}_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO {t}_fts(rowid, text) VALUES (new.id, new.text); END;
"""
TURN_COLUMNS = "id, session_id, role, text, time, interrupted"
MEMORY_COLUMNS = "id, kind, text, importance, confidence, source_turn, time, key"
# Columns added after a file may have been created: (table, column, definition).
MIGRATIONS = (
    ("sessions", "owner", "TEXT NOT NULL DEFAULT ''"),  # host:pid of the open session
    ("sessions", "source", "TEXT NOT NULL DEFAULT ''"),  # "" lived here; "chatgpt", … imported (issue 19)
    ("turns", "origin", "TEXT NOT NULL DEFAULT ''"),  # an imported turn's id in its export ("" lived here)
    ("sessions", "learned", "INTEGER NOT NULL DEFAULT 1"),  # 0: an imported session not yet summarised
)
# After the migrations: an export's message is imported once
INDEXES = "CREATE UNIQUE INDEX IF NOT EXISTS turns_by_origin ON turns(origin) WHERE origin != '';"
TABLES = {
    "sessions": "id, started, ended, summary, backend, source, learned",
    "turns": f"{TURN_COLUMNS}, origin",
    "memories": MEMORY_COLUMNS,
}
COLUMN_DEFAULTS = {"source": "", "origin": "", "learned": 1}  # for exports written before these columns
# Imported history's ids lie below this: older than anything lived here, and clear of the
# spool's provisional ids (-1, -2, …: turns not yet written, spooling_store.py).
IMPORTED_BELOW = -(1 << 40)
