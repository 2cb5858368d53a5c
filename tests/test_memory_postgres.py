"""The PostgreSQL store beyond the shared store suite (tests/test_memory_store.py runs
every store test on both backends): several processes on one companion, a server that
goes away and comes back, imports and recall by meaning on it, and the CLI on it. A real
server, started by the tests (tests/postgres.py)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from conftest import run_cli

from voice_companion.companion.companion import open_store
from voice_companion.companion.imports import importer
from voice_companion.companion.library import DEFAULT_ID
from voice_companion.companion.memory.postgres_store import PostgresMemoryStore, schema_name
from voice_companion.companion.memory.retrieval import Retriever
from voice_companion.companion.memory.spooling_store import SpoolingStore
from voice_companion.companion.memory.vectors import VectorIndex, embed_pending
from voice_companion.core.errors import ConfigError
from voice_companion.engines import embeddings


def companion() -> str:
    return f"pg_{uuid.uuid4().hex[:10]}"


def test_two_processes_share_one_companion_and_never_take_the_same_id(postgres_url):
    """Two servers (two connections) write one companion's turns in turn: each sees the
    other's, ids stay unique and in order, and companions do not see each other."""
    name = companion()
    first, second = PostgresMemoryStore(postgres_url, name), PostgresMemoryStore(postgres_url, name)
    other = PostgresMemoryStore(postgres_url, companion())
    try:
        sid = first.start_session("embedded", "host-a:1")
        ids = []
        for n in range(6):
            store = first if n % 2 == 0 else second
            ids.append(store.add_turn(sid, "user", f"line {n}: my brother moved to Glasgow").id)
        assert ids == sorted(ids) and len(set(ids)) == 6
        assert [t.id for t in second.turns(sid)] == ids
        assert second.unfinished_sessions() == [(sid, "host-a:1")]
        assert other.turns() == [] and other.search_turns("Glasgow") == []
    finally:
        for store in (first, second, other):
            store.close()


def test_a_dropped_connection_spools_the_turn_and_writes_it_when_back(postgres_url):
    name = companion()
    store = SpoolingStore(PostgresMemoryStore(postgres_url, name), retry_s=3600)
    sid = store.start_session()
    store.add_turn(sid, "user", "before the cut")
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # the server drops every client of the companion
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid != pg_backend_pid() "
            "AND datname = current_database() AND backend_type = 'client backend'"
        )
    kept = store.add_turn(sid, "user", "said while the database was away")  # spooled: the connection is gone
    assert kept.id < 0 and store.pending == 1
    store.add_turn(sid, "assistant", "and the reply")  # a new connection: the spool is written first
    assert store.pending == 0
    reopened = PostgresMemoryStore(postgres_url, name)
    try:
        texts = [t.text for t in reopened.turns(sid)]
        assert texts == ["before the cut", "said while the database was away", "and the reply"], kept
    finally:
        reopened.close()
        store.close()


def test_an_unreachable_database_is_one_clear_error(tmp_path):
    with pytest.raises(ConnectionError, match="cannot reach the memory database"):
        PostgresMemoryStore("postgresql://nobody@127.0.0.1:9/none", "mia")
    with pytest.raises(ConfigError, match="is PostgreSQL running there"):
        open_store("postgresql://nobody@127.0.0.1:9/none", "mia", tmp_path)
    with pytest.raises(ConfigError, match="expected postgresql://"):
        open_store("mysql://somewhere/db", "mia", tmp_path)


def test_an_imported_history_is_recalled_by_words_and_by_meaning(postgres_url, tmp_path):
    export = tmp_path / "history.jsonl"
    lines = [
        '{"role": "user", "content": "I work nights as a nurse on the children\'s ward.", "time": 1700000000}',
        '{"role": "assistant", "content": "That sounds demanding.", "time": 1700000005}',
        '{"role": "user", "content": "我今天去医院拔了智齿", "time": 1700000100}',
        '{"role": "assistant", "content": "好好休息。", "time": 1700000105}',
    ]
    lines += [
        f'{{"role": "user", "content": "we talked about the weather again, day {n}", "time": {1700100000 + n * 60}}}'
        for n in range(120)
    ]
    export.write_text("\n".join(lines) + "\n")
    store = PostgresMemoryStore(postgres_url, companion())
    try:
        report = importer.import_history(store, export, "jsonl")
        assert report.turns == 124 and importer.import_history(store, export, "jsonl").turns == 0  # not twice
        importer.learn(store)
        assert "The user works as a nurse on the children's ward" in [m.text for m in store.memories(("fact",))]
        assert [h.item.text for h in store.search_turns("我是什么时候拔的智齿？")] == ["我今天去医院拔了智齿"]
        assert Retriever(store).recall("What is my job?")[0].text.startswith("The user works as a nurse")
        embedder = embeddings.shared()
        assert embed_pending(store, embedder) == 122
        index = VectorIndex(store, embedder)
        found = index.search("Which of my shifts are at night?", k=3)
        assert "nurse" in found.hits[0].turn.text
    finally:
        store.close()


def test_chat_keeps_its_turns_in_postgresql_and_forget_clears_them(postgres_url):
    name = DEFAULT_ID  # the test home's companion; its memory here lives in the test server only
    done = run_cli("chat", "--database", postgres_url, stdin="My sister Lea moved to Porto.\n")
    assert done.returncode == 0, done.stderr
    store = PostgresMemoryStore(postgres_url, name)
    try:
        assert "My sister Lea moved to Porto." in [t.text for t in store.turns()]
        assert "The user's sister lives in Porto" in [m.text for m in store.memories(("fact",))]  # learned
        assert store.sessions()[0].ended is not None and "Porto" in store.sessions()[0].summary
        store.forget_all()
        assert store.turns() == [] and store.memories(("fact",)) == []
    finally:
        store.close()
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema_name(name),)).fetchone()
