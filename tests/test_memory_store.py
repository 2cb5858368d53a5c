"""The memory store (real SQLite files), fact patterns, retrieval and the context window."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid

import pytest
from fakes import FakeLLM

from voice_companion.companion.memory import context, facts
from voice_companion.companion.memory.conversation import MemoryConversation
from voice_companion.companion.memory.fact_llm import extract_with_llm, grounded, parse
from voice_companion.companion.memory.postgres_store import PostgresMemoryStore
from voice_companion.companion.memory.retrieval import RecallWeights, Retriever
from voice_companion.companion.memory.session_end import finish_session
from voice_companion.companion.memory.sqlite_store import FORGOTTEN, SQLiteMemoryStore
from voice_companion.core.messages import INTERRUPTED_MARK, ChatMessage
from voice_companion.core.text import estimate_tokens


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Every store test runs on both backends: a real SQLite file and a real PostgreSQL
    server (each test its own companion schema)."""
    if request.param == "sqlite":
        s = SQLiteMemoryStore(tmp_path / "companion" / "memory.db")
    else:
        s = PostgresMemoryStore(request.getfixturevalue("postgres_url"), f"test_{uuid.uuid4().hex[:12]}")
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    s = SQLiteMemoryStore(tmp_path / "companion" / "memory.db")
    yield s
    s.close()


def backdate(store, table: str, days: float, row_id: int | None = None) -> None:
    """Make rows older, in either backend's SQL."""
    query = f"UPDATE {table} SET time = ?" + (" WHERE id = ?" if row_id is not None else "")
    args = (time.time() - days * 86400, *([row_id] if row_id is not None else []))
    if isinstance(store, PostgresMemoryStore):
        store._db.execute(query.replace("?", "%s"), args)
    else:
        store._db.execute(query, args)


def conversation(store, total=600, **kw) -> MemoryConversation:
    return MemoryConversation(store, "You are Mia.", context.Budget(total), **kw)


def test_wal_owner_only_and_durable(tmp_path, sqlite_store):
    store = sqlite_store
    sid = store.start_session()
    store.add_turn(sid, "user", "hello")
    assert os.stat(tmp_path / "companion").st_mode & 0o777 == 0o700
    for name in ("memory.db", "memory.db-wal", "memory.db-shm"):
        assert os.stat(tmp_path / "companion" / name).st_mode & 0o777 == 0o600
    other = sqlite3.connect(tmp_path / "companion" / "memory.db")  # another process's view
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT text FROM turns").fetchall() == [("hello",)]


def test_trigram_search_finds_chinese_and_english(store):
    sid = store.start_session()
    store.add_turn(sid, "user", "下周三我要去医院看牙医")
    store.add_turn(sid, "assistant", "看牙医 is in my reply, not searched")
    store.add_turn(sid, "user", "We are going to Lisbon for our anniversary")
    assert [h.item.text for h in store.search_turns("我什么时候去看牙医？")] == ["下周三我要去医院看牙医"]
    assert "Lisbon" in store.search_turns("where do we go for the anniversary?")[0].item.text
    assert store.search_turns("the and what?") == []  # only stopwords: nothing to search


def test_search_finds_other_forms_of_a_word(store):
    sid = store.start_session()
    store.add_turn(sid, "user", "Night shift again tomorrow.")
    store.add_turn(sid, "user", "We visited my grandmother in Porto")
    store.add_turn(sid, "user", "Mes chats dorment toute la journée")
    assert [h.item.text for h in store.search_turns("how were the night shifts?")] == ["Night shift again tomorrow."]
    assert "grandmother" in store.search_turns("when am I visiting grandma's town?")[0].item.text
    assert "chats" in store.search_turns("et ton chat ?")[0].item.text


def test_chinese_two_character_words_are_found_and_follow_edits(tmp_path):
    """Trigrams cannot match a two-character word ("智齿"); the bigram index can, stays in
    step with edits and deletions, and is built for a file made before it existed."""
    import sqlite3

    path = tmp_path / "memory.db"
    store = SQLiteMemoryStore(path)
    sid = store.start_session()
    pulled = store.add_turn(sid, "user", "我今天去医院拔了智齿")
    store.add_turn(sid, "assistant", "智齿拔了要多休息")  # the companion's words are not searched
    store.add_turn(sid, "user", "今天上班很累")
    assert [h.item.id for h in store.search_turns("我是什么时候拔的智齿？")] == [pulled.id]
    store.update_turn(pulled.id, "我今天去医院看了牙", False)
    assert store.search_turns("智齿") == []
    assert [h.item.id for h in store.search_turns("牙医说什么")] == []  # "看了牙": no shared unit
    store.close()
    with sqlite3.connect(path) as old:  # as a file written before turns_cjk existed
        old.execute("DELETE FROM turns_cjk")
        old.execute("DELETE FROM meta WHERE key = 'cjk_index'")
    store = SQLiteMemoryStore(path)
    assert [h.item.text for h in store.search_turns("上班累不累")] == ["今天上班很累"]
    store.close()


def test_keyed_facts_replace_and_forget_redacts(store):
    sid = store.start_session()
    turn = store.add_turn(sid, "user", "I live in Paris")
    store.add_turn(sid, "assistant", "Paris is lovely")
    store.add_memory("fact", "The user lives in Paris", key="home", source_turn=turn.id)
    newer = store.add_memory("fact", "The user lives in Lyon", key="home")
    assert [m.text for m in store.memories()] == ["The user lives in Lyon"]
    assert store.forget(newer.id) and not store.forget(newer.id)
    paris = store.add_memory("fact", "The user lives in Paris", key="home", source_turn=turn.id)
    store.forget(paris.id)
    assert [t.text for t in store.turns()] == [FORGOTTEN, FORGOTTEN]
    assert store.search_turns("Paris") == []


def test_forget_all_and_rows_round_trip(tmp_path, store):
    sid = store.start_session()
    store.add_turn(sid, "user", "my cat is Mochi")
    store.add_memory("fact", "The user's cat is called Mochi", 0.9, 0.9, 1, "rel:cat")
    store.end_session(sid, "talked about Mochi")
    rows = store.export_rows()
    store.forget_all()
    assert store.memories() == [] and store.turns() == [] and store.sessions() == []
    copy = SQLiteMemoryStore(tmp_path / "copy.db")
    copy.import_rows(rows)
    assert copy.export_rows() == rows and copy.search_memories("Mochi")
    assert copy.integrity() == "ok"


@pytest.mark.parametrize(
    "said, expected",
    [
        ("Hi! My name is Sam, nice to meet you.", ["The user's name is Sam"]),
        (
            "My sister Anna called me yesterday and I live in Leeds.",
            ["The user's sister is called Anna", "The user lives in Leeds"],
        ),
        ("I'm allergic to peanuts, so careful.", ["The user is allergic to peanuts"]),
        ("我叫小明，我住在上海。", ["用户的名字是小明", "用户住在上海"]),
        ("我养了一只猫叫咪咪。", ["用户的猫叫咪咪"]),
        ("je m'appelle Claire et j'habite à Lyon.", ["L'utilisateur s'appelle Claire", "L'utilisateur habite à Lyon"]),
        ("What is my name?", []),
        ("我叫什么名字？", []),
        ("my sister called me yesterday", []),
        ("I work nights as a nurse on the children's ward.", ["The user works as a nurse on the children's ward"]),
        ("I work hard in the garden.", []),
        (
            "by the way my sister Lea moved to Porto last spring.",
            ["The user's sister is called Lea", "The user's sister lives in Porto"],
        ),
        ("I moved to Leeds two years ago.", ["The user lives in Leeds"]),
        ("我姐姐搬到了深圳。", ["用户的姐姐住在深圳"]),
    ],
)
def test_fact_patterns(said, expected):
    assert [f.text for f in facts.extract(said)] == expected


def test_llm_facts_must_be_grounded():
    said = "Honestly my grandmother Rosa taught me to bake bread"
    assert grounded("The user's grandmother Rosa taught them to bake bread", said)
    assert not grounded("The user is a professional chef in Rome", said)
    assert [f.text for f in parse("- The user's grandmother is Rosa\nThe user lives on Mars\nNONE", said)] == [
        "The user's grandmother is Rosa"
    ]
    assert grounded("用户的奶奶教会了用户做面包", "我奶奶教会了我做面包") and not grounded(
        "用户住在火星", "我奶奶教会了我做面包"
    )


def test_llm_extraction_with_the_real_model_stores_nothing_invented(llm):
    said = "My grandmother Rosa taught me to bake bread when I was little."
    found = asyncio.run(extract_with_llm(llm, said))
    assert found is not None and all(grounded(f.text, said) for f in found)
    assert asyncio.run(extract_with_llm(llm, said, busy=lambda: True)) is None  # the call needs the LLM


def test_recall_mixes_relevance_recency_importance(store):
    sid = store.start_session()
    old = store.add_memory("fact", "The user plays the cello", importance=0.5)
    backdate(store, "memories", 400, old.id)
    store.add_memory("fact", "The user plays tennis on Sundays", importance=0.5)
    store.add_memory("lore", "Lumen is a floating city.", key="lore:Lumen|city")
    store.add_turn(sid, "user", "I started learning the piano, I play it every day")
    found = [r.text for r in Retriever(store).recall("What do I play?", k=3)]
    assert found.index("The user plays tennis on Sundays") < found.index("The user plays the cello")  # recency
    assert any("piano" in r for r in found) and all("Lumen" not in r for r in found)
    assert Retriever(store).recall("tell me about lumen", k=2)[0].text == "Lumen is a floating city."


def test_window_rolls_into_summaries_and_prefix_stays_stable(store):
    store.add_memory("fact", "The user's name is Sam", importance=1.0, key="name")
    conv = conversation(store, total=700)
    stable = rolled = 0
    for i in range(40):
        before = conv.prefix()
        conv.record(f"Turn {i}: today I watered the tomatoes and read a chapter of my book.", f"Nice, turn {i}!")
        after = conv.prefix()
        if after[: len(before)] == before:
            stable += 1  # append-only: the cached prefix is still a prefix
        else:
            rolled += 1
            assert after[0] != before[0]  # only a roll changes the system message
        assert "The user's name is Sam" in after[0].content  # who the user is never leaves
        assert sum(estimate_tokens(m.prompt_text) for m in conv.prompt_for("hi")) <= conv.budget.total
    assert rolled >= 3 and stable >= 30
    assert "Earlier in this conversation:" in conv.system_message()


def test_interrupted_and_amended_replies_are_saved(store):
    conv = conversation(store)
    reply = conv.record("tell me a story", "Once upon a time there was", reply_id="resp_1")
    assert reply.id == "resp_1"
    assert conv.amend("resp_1", "Once upon", interrupted=True)  # the session's barge-in
    assert conv.amend("resp_1", "Once", interrupted=True)  # the server's truncation
    assert not conv.amend("resp_unknown", "x", interrupted=True)
    last = store.turns()[-1]
    assert (last.text, last.interrupted) == ("Once", True)
    conv.close()
    resumed = conversation(store)
    assert resumed.prefix()[-1] == ChatMessage("assistant", "Once", interrupted=True)
    assert resumed.prefix()[-1].as_dict()["content"] == "Once" + INTERRUPTED_MARK  # how the LLM reads it


def test_background_learning_and_session_summary(store):
    conv = conversation(store)
    conv.record("By the way, my dog is called Rex.", "Rex is a great name!")
    conv.worker.wait_idle()
    assert any("The user's dog is called Rex" in m.prompt_text for m in conv.prompt_for("and my dog?")[-1:])
    conv.close()
    summary = store.sessions()[0].summary
    assert "Rex" in summary
    resumed = conversation(store)
    # the next session continues the same window (its saved LLM state stays valid):
    # the turn itself is in the prompt, and the system message is the one it was built with
    assert "my dog is called Rex" in "\n".join(m.content for m in resumed.prefix()[1:])
    assert resumed.system_message() == conv.system_message()


def test_worker_thread_exists_only_while_there_is_work(store, monkeypatch):
    """A server keeps dozens of resumable conversations; idle ones must hold no thread."""
    import threading

    from voice_companion.companion.memory import worker as memory_worker

    monkeypatch.setattr(memory_worker, "IDLE_EXIT_S", 0.2)

    def workers() -> int:
        return sum(t.name == "memory-worker" for t in threading.enumerate())

    before = workers()
    conv = conversation(store)
    assert workers() == before  # nothing to learn yet
    conv.record("My sister is called Ada.", "Nice!")
    conv.worker.wait_idle()
    deadline = time.monotonic() + 5
    while workers() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers() == before  # idle: the thread has ended
    conv.record("I live in Lyon.", "Lovely city.")  # a new job starts a new thread
    conv.worker.wait_idle()
    texts = [m.text for m in store.memories(("fact",))]
    assert any("Ada" in t for t in texts) and any("Lyon" in t for t in texts), texts
    conv.close()
    assert store.sessions()[0].summary
    conv.worker.after_turn(0, "My cat is called Tom.")  # after the end: ignored, no thread
    assert workers() == before


def test_token_estimate_counts_chinese_characters():
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("hello world!") == 3


def test_llm_learning_runs_on_the_commands_one_event_loop(tmp_path):
    """The worker thread hands the LLM's requests to the loop the turns were recorded on
    (the LLM's HTTP client and slot guard live there), at session end as after a turn."""

    class LoopNotingLLM(FakeLLM):
        loops: list[asyncio.AbstractEventLoop] = []

        async def stream(self, messages, options=None, gate=None):
            self.loops.append(asyncio.get_running_loop())
            async for delta in super().stream(messages, options, gate):
                yield delta

    llm = LoopNotingLLM("The user is learning the cello", first_token_s=0.01, token_s=0.0)
    store = SQLiteMemoryStore(tmp_path / "memory.db")

    async def command() -> asyncio.AbstractEventLoop:
        conversation = MemoryConversation(store, "You are Mia.", context.Budget(1500), llm, "session_end")
        conversation.record("I have been learning the cello for two years now.", "How lovely!")
        await finish_session(conversation, None)
        return asyncio.get_running_loop()

    loop = asyncio.run(command())
    assert llm.loops == [loop]
    assert "The user is learning the cello" in [m.text for m in store.memories()]
    assert store.sessions()[0].summary  # and the session was finished


def test_a_small_window_keeps_room_for_the_recent_turns():
    """The memory parts of the system message shrink so the turns keep 30 % of a small
    window (tiny's 1k: with the full shares they had 170 tokens and it rolled every line),
    summaries first, the profile last; a window with room to spare (small's 2k) keeps the
    full shares."""
    small = context.Budget.for_context(1024, 80, recall_cap=72)
    profile, episodes, rolled = small.memory_parts(persona_tokens=288)
    system = 288 + profile + episodes + rolled
    assert small.for_turns(system) >= small.turns_min * small.total - 1
    assert episodes == rolled == 16 and profile > 100
    large = context.Budget.for_context(2048, 80, recall_cap=16)
    assert large.memory_parts(288) == (large.part(large.profile), large.part(large.episodes), large.part(large.rolled))


def test_a_statement_keeps_the_recall_of_its_words_so_far(store):
    """The listen-ahead asked with the words so far; the final words of a statement keep
    that recall (the LLM has the message cached), a question is searched again."""
    store.add_memory("fact", "The user walks in the park every morning", importance=0.5)
    store.add_memory("fact", "The user's dog is called Rex and he loves squirrels", importance=0.5)
    so_far, final = "This morning I walked in the park", "This morning I walked in the park and Rex chased squirrels"

    fresh = conversation(store).prompt_for(final)[-1].context
    conv = conversation(store)
    drafted = conv.prompt_for(so_far)[-1].context
    assert drafted != fresh  # the last words change what search finds...
    assert conv.prompt_for(final)[-1].context == drafted  # ...but the statement keeps its draft's
    question = "This morning I walked in the park, what is my dog called?"
    assert "Rex" in conv.prompt_for(question)[-1].context  # a question is searched on all its words
    conv.record(final, "Lovely!")
    assert "squirrels" in conv.prompt_for("Rex chased squirrels again today")[-1].context  # a new turn: no draft


def test_a_different_message_is_not_a_draft():
    from voice_companion.companion.memory.conversation import _drafts

    assert _drafts("This morning I walked in the pa", "This morning, I walked in the park and Rex ran.")
    assert not _drafts("This morning I walked", "Tonight I will cook a long dinner for my parents.")
    assert not _drafts("Hi", "Hi there, how are you doing today my friend?")  # too little of it


def test_a_question_quotes_a_turn_still_in_the_window(store):
    """A 1.5B model misses a turn four messages up; quoted next to the question it answers."""
    conv = MemoryConversation(store, "You are Mia.", context.Budget(2048, recall_cap=16))
    conv.record("Ugh, I have a dentist appointment on Thursday at nine.", "Oof. Is it just a check-up?")
    conv.record("Yes, just a check-up. Anyway, I watched a great film last night.", "Ooh, which one?")
    assert "Thursday at nine" in conv.prompt_for("When was my dentist appointment again?")[-1].context
    assert "dentist" not in conv.prompt_for("The dentist is near the station.")[-1].context  # a statement: no
    conv.record("It was a film about a dentist.", "Fun!")
    asked = conv.prompt_for("When is the dentist again?")[-1].context
    assert "Thursday" in asked and "film about a dentist" not in asked  # the last exchange is near enough


def test_a_question_answered_from_memory_is_sampled_cool(store):
    from voice_companion.engines.llm import RECALLED_ANSWER_TEMPERATURE, GenerationOptions

    conv = conversation(store)
    conv.record("Ugh, I have a dentist appointment on Thursday at nine.", "Oof. Is it just a check-up?")
    conv.record("Yes. Anyway, I watched a great film last night.", "Ooh, which one?")
    options = GenerationOptions(temperature=0.7)
    asked = conv.prompt_for("When was my dentist appointment again?")
    assert asked[-1].context and options.for_prompt(asked).temperature == RECALLED_ANSWER_TEMPERATURE
    assert options.for_prompt(conv.prompt_for("The film was lovely.")).temperature == 0.7  # a statement
    assert options.for_prompt(conv.prompt_for("Do you like films?")).temperature == 0.7  # nothing recalled


def test_two_recalled_turns_share_one_quote_and_fit_a_question_budget(store):
    """The question "Which cities did I visit with Marco?" needs two past lines; as two whole notes
    they did not fit small's 32-token question budget, joined under one "the user said"
    they do, and a line still noted in the prompt is not quoted again."""
    sid = store.start_session()
    ghent = store.add_turn(sid, "user", "Marco and I spent the weekend in Ghent.")
    bruges = store.add_turn(sid, "user", "Marco and I took the train to Bruges.")
    backdate(store, "turns", 9, ghent.id)
    backdate(store, "turns", 3, bruges.id)
    found = Retriever(store).recall("Which cities did I visit with Marco?", k=4, turns=True)
    turns = [r for r in found if r.source == "turn"]
    assert len(turns) == 2 and all(r.quote and r.said_on for r in turns)
    separate = "; ".join(r.text for r in turns)
    note = context.recall_note(found, 32)
    assert estimate_tokens(separate) > 32  # the whole notes do not fit
    assert note.count("the user said") == 1 and "Ghent" in note and "Bruges" in note
    again = context.recall_note(found, 32, already=f"(Things you remember that may help: {turns[0].text})")
    assert turns[0].quote not in again and turns[1].quote in again


@pytest.mark.parametrize(
    "question, slots",
    [
        ("What is my job?", ["work"]),
        ("What do I do for a living?", ["work"]),
        ("Where does my sister live now?", ["home:sister"]),
        ("我姐姐住在哪里？", ["home:姐姐"]),
        ("How old am I?", ["age"]),
        ("What is your job?", []),  # about the companion
        ("I love my job.", []),  # a statement asks nothing
    ],
)
def test_the_slot_a_question_asks_about(question, slots):
    assert facts.slots_asked(question) == slots


def test_a_question_about_a_slot_recalls_its_fact_before_lines_that_share_a_word(store):
    """ "What is my job?" shares no word with "I work nights as a nurse…", and "Where does my
    sister live now?" shares two with yesterday's small talk about her: the slot's fact
    answers both, ahead of the small talk (scripts/bench_recall.py: 16 → 18 of 19)."""
    sid = store.start_session()
    nurse = store.add_turn(sid, "user", "I work nights as a nurse on the children's ward.")
    porto = store.add_turn(sid, "user", "by the way my sister Lea moved to Porto last spring.")
    for turn in (nurse, porto):
        for fact in facts.extract(turn.text):
            store.add_memory("fact", fact.text, fact.importance, fact.confidence, turn.id, fact.key)
    backdate(store, "memories", 200)
    backdate(store, "turns", 200)
    for _ in range(3):
        store.add_turn(sid, "user", "my sister baked bread tonight and I feel tired now.")
    retriever = Retriever(store)
    assert retriever.recall("What is my job?", k=4)[0].text == "The user works as a nurse on the children's ward"
    where = retriever.recall("Where does my sister live now?", k=4)
    assert where[0].text == "The user's sister lives in Porto"
    note = context.recall_note(where, 32)
    assert "Porto" in note and note.index("Porto") < note.index("baked bread")


def test_a_line_a_recalled_fact_came_from_gives_way_to_one_that_adds_something(store):
    """ "What is my daughter's exam?": the fact "daughter is called Noor" and the line it came
    from filled small's 32 tokens; the line that names the exam now comes before that one."""
    sid = store.start_session()
    told = store.add_turn(sid, "user", "my daughter Noor plays the violin.")
    store.add_turn(sid, "user", "Noor has her violin exam on a Saturday in June.")
    (fact,) = facts.extract(told.text)
    store.add_memory("fact", fact.text, fact.importance, fact.confidence, told.id, fact.key)
    found = Retriever(store).recall("What is my daughter's exam?", k=4)
    note = context.recall_note(found, 32)
    assert "Noor" in note and "violin exam" in note and "plays the violin" not in note
    plain = Retriever(store, RecallWeights(restated_turn=1.0)).recall("What is my daughter's exam?", k=4)
    assert "violin exam" not in context.recall_note(plain, 32)  # without the rule it did not fit
