"""Fault: the disk fills while the companion saves memory. Real SQLite files: on a real
1 MiB tmpfs where this process may mount one (root), and everywhere with SQLite's own
`max_page_count`, which fails a write with the very error a full disk gives
(SQLITE_FULL, "database or disk is full"). The turn stays in the live history, is
written once there is room again, and the user is told (`memory_not_saved`)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import subprocess

import pytest
from servers import TOKEN, ServerThread, make_shared, until

from voice_companion.companion.companion import open_companion
from voice_companion.companion.memory.spooling_store import SpoolingStore
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore
from voice_companion.core.config import Settings
from voice_companion.transports.websocket import tls
from voice_companion.transports.websocket.app import App
from voice_companion.transports.websocket.client import RealtimeClient


def fill_sqlite(store: SpoolingStore) -> None:
    """No page may be added any more, and ballast turns (in a session of their own) fill
    the free space of the last ones: every turn written now fails with SQLITE_FULL."""
    db, inner = store.inner._db, store.inner
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    ballast = None
    for size in (2000, 200, 20, 2, 1):
        for role in ("user", "assistant"):
            try:
                while True:
                    ballast = ballast or inner.start_session("ballast")
                    inner.add_turn(ballast, role, "b" * size)
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)


def free_sqlite(store: SpoolingStore) -> None:
    store.inner._db.execute("PRAGMA max_page_count = 1073741823")


def companion_for(tmp_path, llm):
    mine = Settings()
    mine.llm.tier = "tiny"
    mine.paths = dataclasses.replace(mine.paths, data_dir=tmp_path / "data")
    companion = open_companion(mine)
    return companion, companion.conversation(mine, llm)


def test_a_full_database_keeps_the_turn_and_writes_it_later(tmp_path, llm):
    companion, conversation = companion_for(tmp_path, llm)
    store = companion.store
    assert isinstance(store, SpoolingStore)
    told: list[tuple[str, str]] = []
    store.listen(lambda code, message: told.append((code, message)))
    conversation.record("My cat is called Mochi.", "What a lovely name!")
    fill_sqlite(store)
    conversation.record("Tell me a story.", "Once upon a time, a cat found a hat.", reply_id="resp_1")  # goes on
    assert conversation.amend("resp_1", "Once upon a time", interrupted=True)  # a barge-in, while the disk is full
    assert [m.content for m in conversation.history][-2] == "Tell me a story."
    waiting = store.pending
    assert waiting == 2 and [c for c, _ in told] == ["memory_not_saved"]
    assert "free some disk space" in told[0][1]
    free_sqlite(store)
    assert store.retry() == 0 and store.written_late == waiting
    conversation.close()
    companion.store.close()
    reopened = SQLiteMemoryStore(tmp_path / "data" / "companions" / companion.id / "memory.db")
    texts = [(t.role, t.text, t.interrupted) for t in reopened.turns(conversation.session_id)]
    assert texts[-4:] == [
        ("user", "My cat is called Mochi.", False),
        ("assistant", "What a lovely name!", False),
        ("user", "Tell me a story.", False),
        ("assistant", "Once upon a time", True),
    ]
    assert reopened.integrity() == "ok"


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB filesystem (tmpfs), where mounting is allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root); the max_page_count test covers SQLITE_FULL")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_is_survived_and_retried_by_the_timer(tiny_disk):
    store = SpoolingStore(SQLiteMemoryStore(tiny_disk / "memory.db"), retry_s=0.2)
    told: list[str] = []
    store.listen(lambda code, message: told.append(code))
    session = store.start_session()
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # everything the disk has left
        try:
            while True:
                fh.write(b"\0" * 1024)
        except OSError:
            pass
    ids = [store.add_turn(session, "user", f"turn {i}: " + "my cat Mochi likes tuna. " * 12).id for i in range(5)]
    assert store.pending and told == ["memory_not_saved"] and min(ids) < 0
    filler.unlink()  # the user frees some space
    for _ in range(50):
        if not store.pending:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert store.pending == 0
    assert [t.text[:6] for t in store.turns(session)] == [f"turn {i}" for i in range(5)]
    store.close()


def test_the_caller_is_told_over_the_websocket(stt, llm, tts, tmp_path):
    """The server's calls are sessions of the companion (transports/websocket/shared.py): same store."""
    mine = Settings()
    mine.llm.tier = "tiny"
    mine.paths = dataclasses.replace(mine.paths, data_dir=tmp_path / "data")
    companion = open_companion(mine)
    shared = make_shared(
        stt,
        llm,
        tts,
        8,
        system_prompt=companion.system_prompt(mine),
        companion_name=companion.persona.name,
        companion=companion,
        settings=mine,
    )
    cert = tls.self_signed(tmp_path / "tls", ["localhost"])
    running = ServerThread(App(shared, TOKEN), tls.server_context(cert.cert, cert.key))
    fill_sqlite(companion.store)

    async def call():
        async with await RealtimeClient.connect(running.url, TOKEN) as client:
            log: list = []
            await client.send_text("Remember this: my secret word is pelican.")
            await client.send({"type": "response.create"})
            error = await until(client, "error", log, timeout=60)
            done = await until(client, "response.done", log, timeout=60)
            return client.session["conversation_id"], error, done

    try:
        conversation_id, error, done = asyncio.run(call())
        conversation = running.app.conversations.get(conversation_id)
    finally:
        running.stop()
    assert error["code"] == "memory_not_saved" and done["status"] == "completed"
    assert conversation.history[-2].content.startswith("Remember this:")
    free_sqlite(companion.store)
    assert companion.store.retry() == 0
    running.app.close()
