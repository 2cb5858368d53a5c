"""A returning user's session starts warm: saved prefix states, the continuing window,
rolls prepared ahead, and end-of-session work that really happens (real tiny LLM,
real SQLite files, real subprocesses)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voice_companion.companion.companion import open_companion
from voice_companion.companion.memory import context
from voice_companion.companion.memory.conversation import MemoryConversation
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore
from voice_companion.conversation.file_reply import collect_reply
from voice_companion.core.config import Settings
from voice_companion.engines import llm_state
from voice_companion.engines.llm import ChatMessage, GenerationOptions

GREEDY = GenerationOptions(max_tokens=16, temperature=0.0, top_p=1.0, repeat_penalty=1.0)
PREFIX = [
    ChatMessage(
        "system",
        "You are Mia, a warm friend. " + " ".join(f"The user once mentioned thing number {i}." for i in range(30)),
    ),
    ChatMessage("user", "Hi Mia, I had a long day."),
    ChatMessage("assistant", "Oh no, tell me about it!"),
]
QUESTION = ChatMessage("user", "What did I mention?")


def evict(llm) -> None:
    """Fill the slot with an unrelated prompt, so only a restore can bring PREFIX back."""
    asyncio.run(llm.prefill([ChatMessage("system", "Unrelated words. " * 150), ChatMessage("user", "x")]))


def test_a_restored_state_gives_the_same_first_tokens_as_a_cold_prefill(llm, tmp_path):
    assert asyncio.run(llm.save_state(PREFIX, tmp_path))
    evict(llm)
    cold = asyncio.run(collect_reply(llm, [*PREFIX, QUESTION], GREEDY))
    evict(llm)
    assert asyncio.run(llm.restore_state(PREFIX, tmp_path))
    warm = asyncio.run(collect_reply(llm, [*PREFIX, QUESTION], GREEDY))
    assert llm.last_usage.cached >= 150 and llm.last_usage.processed < 30  # it came from the state
    assert warm == cold and warm
    for path in tmp_path.iterdir():  # owner-only, like the rest of the companion's folder
        assert path.stat().st_mode & 0o777 == 0o600
    assert tmp_path.stat().st_mode & 0o777 == 0o700


def test_a_state_restored_ahead_leaves_the_live_prompt_in_place(llm, tmp_path):
    """The session seeds the spare slot with its saved prefix (the coming window begins
    the same way); the live slot keeps what it holds."""
    unrelated = [ChatMessage("system", "Unrelated words. " * 150), ChatMessage("user", "x")]
    assert asyncio.run(llm.save_state(PREFIX, tmp_path))
    evict(llm)
    assert asyncio.run(llm.restore_state(PREFIX, tmp_path, ahead=True))
    asyncio.run(collect_reply(llm, [*unrelated[:1], ChatMessage("user", "y")], GREEDY))
    assert llm.last_usage.cached >= 150  # the live slot still had it
    asyncio.run(collect_reply(llm, [*PREFIX, QUESTION], GREEDY))
    assert llm.last_usage.cached >= 150 and llm.last_usage.processed < 30  # the spare slot had this


def test_a_state_for_another_prefix_or_model_is_refused(llm, tmp_path, caplog):
    assert asyncio.run(llm.save_state(PREFIX, tmp_path))
    other = [PREFIX[0], ChatMessage("user", "Something else entirely.")]
    with caplog.at_level(logging.INFO, logger="voice_companion"):
        assert not asyncio.run(llm.restore_state(other, tmp_path))
        assert "another prompt" in caplog.text
        _, meta = llm_state.paths(tmp_path, llm.identity)
        described = json.loads(meta.read_text())
        described["model"] = "another-model.gguf|123|abc|xllamacpp 1|2x4096"  # e.g. another quantisation
        meta.write_text(json.dumps(described))
        assert not asyncio.run(llm.restore_state(PREFIX, tmp_path))
        assert "another model" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_a_damaged_state_falls_back_to_a_cold_prefill_with_one_log_line(llm, tmp_path, caplog, damage):
    store = SQLiteMemoryStore(tmp_path / "memory.db")
    conversation = MemoryConversation(store, PREFIX[0].content, context.Budget(1500), state_dir=tmp_path)
    assert asyncio.run(llm.save_state(conversation.prefix(), tmp_path))
    evict(llm)
    assert asyncio.run(conversation.warm_up(llm)) == "restored"  # intact, it is used
    data, _ = llm_state.paths(tmp_path, llm.identity)
    raw = bytearray(data.read_bytes())
    if damage == "truncate":
        data.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    evict(llm)
    with caplog.at_level(logging.INFO, logger="voice_companion"):
        how = asyncio.run(conversation.warm_up(llm))
    assert how == "prefilled"
    damaged = [r for r in caplog.records if "truncated or corrupt" in r.getMessage()]
    assert len(damaged) == 1 and damaged[0].levelno == logging.WARNING
    assert asyncio.run(collect_reply(llm, [*conversation.prefix(), QUESTION], GREEDY))  # still answers


def test_the_next_session_continues_the_window_and_opens_from_the_saved_state(llm, tmp_path):
    settings = Settings()
    settings.llm.tier = "tiny"
    settings.paths = dataclasses.replace(settings.paths, data_dir=tmp_path / "data")
    companion = open_companion(settings)
    first = companion.conversation(settings, llm)
    for text in ("My cat is called Mochi.", "I live in Leeds.", "Work was long today."):
        first.record(text, asyncio.run(collect_reply(llm, first.prompt_for(text), GREEDY)))
    before = first.prefix()
    first.close()
    assert asyncio.run(first.save_for_next(llm))
    evict(llm)
    second = companion.conversation(settings, llm)
    assert second.prefix() == before  # the same window: same system message, same turns
    assert asyncio.run(second.warm_up(llm)) == "restored"
    asyncio.run(collect_reply(llm, second.prompt_for("What is my cat called?"), GREEDY))
    # only the new message was prefilled, with its recall (the question quotes the cat's turn)
    assert llm.last_usage.processed < 80 and llm.last_usage.cached > 300
    second.close()
    companion.close()


def test_what_was_recalled_stays_with_the_message_so_the_next_prompt_extends_the_cached_one(tmp_path):
    """The memories recalled for a message stay in the history as sent (`context`), in
    this session and the next: the next prompt is the last one plus the new message, and
    a saved state of it stays valid. Without it the last message, its recall and the reply
    were read again on every line (scripts/bench_returning.py, tiny chat: ~220 tokens)."""
    store = SQLiteMemoryStore(tmp_path / "memory.db")
    store.add_memory("note", "The user's sister Lea visits on Saturdays", importance=0.3)
    first = MemoryConversation(store, "You are Mia.", context.Budget(1500), state_dir=tmp_path / "state")
    asked = first.prompt_for("Who visits me on Saturdays? Lea?")
    assert asked[-1].content == "Who visits me on Saturdays? Lea?" and "Lea visits" in asked[-1].context
    first.record("Who visits me on Saturdays? Lea?", "Your sister Lea does!")
    again = first.prompt_for("And is Lea my sister?")
    assert again[: len(asked)] == asked and [m.prompt_text for m in again[: len(asked)]] == [
        m.prompt_text for m in asked
    ]
    assert not again[-1].context  # already in the prompt: not repeated
    assert store.turns()[0].text == "Who visits me on Saturdays? Lea?"  # the store keeps the user's words
    first.close()
    second = MemoryConversation(store, "You are Mia.", context.Budget(1500), state_dir=tmp_path / "state")
    assert [m.prompt_text for m in second.prefix()] == [m.prompt_text for m in first.prefix()]
    second.close()


@pytest.mark.parametrize("prefilled", [True, False])
def test_a_roll_is_prepared_before_the_window_fills(tmp_path, prefilled):
    """The session prefills the coming window while idle and says so (mark_prepared): the
    swap happens as the window fills. Unprepared, the window waits (within its grace)."""
    from voice_companion.companion.memory.conversation import ROLL_GRACE

    store = SQLiteMemoryStore(tmp_path / "memory.db")
    conversation = MemoryConversation(store, "You are Mia.", context.Budget(700), state_dir=tmp_path / "state")
    swaps, fills = 0, []
    for i in range(60):
        prepared = conversation.upcoming
        if prepared is not None:  # what the session prefills while idle is that window
            assert conversation.next_prefix()[0].content == prepared.system
            if prefilled:
                conversation.mark_prepared(conversation.next_prefix())
        before, fill = conversation.prefix(), conversation._fill()
        conversation.record(f"Turn {i}: I watered the tomatoes and read a chapter of my book.", f"Nice, turn {i}!")
        if conversation.rolls > swaps:
            swaps = conversation.rolls
            fills.append(fill)
            assert prepared is not None and conversation.window is prepared  # no roll built on the spot
            assert "Earlier in this conversation:" in conversation.window.system
        else:
            assert conversation.prefix()[: len(before)] == before  # append-only between rolls
    assert swaps >= 3
    if prefilled:
        assert all(f <= 1.0 for f in fills)  # swapped as soon as the window was full
    else:
        assert all(1.0 < f <= ROLL_GRACE for f in fills)  # it waited for the prefill, within the grace
    assert json.loads(store.get_meta("window"))["first_turn"] == conversation.window.first_turn  # kept for next time


def test_stepwise_prefill_gives_way_and_then_finishes(llm):
    long_prefix = [ChatMessage("system", "Background words to prepare. " * 80), ChatMessage("user", "ok")]
    assert not asyncio.run(llm.prefill(long_prefix, should_stop=lambda: True))
    assert asyncio.run(llm.prefill(long_prefix, should_stop=lambda: False))
    asyncio.run(collect_reply(llm, [*long_prefix, ChatMessage("assistant", "Yes."), QUESTION], GREEDY))
    assert llm.last_usage.cached >= 300


class CountingServer:
    """The embedded llama.cpp server, counting the prompt tokens each prefill step processes."""

    def __init__(self, inner) -> None:
        self.inner, self.processed, self.steps = inner, 0, 0

    def handle_completions(self, request):
        reply = self.inner.handle_completions(request)
        self.processed += int(reply.get("timings", {}).get("prompt_n", 0))
        self.steps += 1
        return reply

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_stopped_prefill_resumes_where_it_stopped_and_spares_the_live_prompt(llm):
    """Two steps, a stop (the user speaks), then the rest: every token is processed once.
    (Restarting from the first step truncated the slot's KV and redid the whole window at
    every turn, so a roll was never ready in time: 17-24 s stalls on `small`.)"""
    live = [*PREFIX, QUESTION]
    asyncio.run(collect_reply(llm, live, GREEDY))  # the live prompt, in its slot
    coming = [ChatMessage("system", "The next window, with words to prepare. " * 60), ChatMessage("user", "ok")]
    counting = CountingServer(llm._server)
    llm._server = counting
    try:
        asked = iter([False, False])
        assert not asyncio.run(llm.prefill(coming, should_stop=lambda: next(asked, True), ahead=True))
        assert counting.steps == 2
        assert asyncio.run(llm.prefill(coming, should_stop=lambda: False, ahead=True))
        total = len(llm._tokens(coming))
        assert counting.processed <= total + 2 * counting.steps, (counting.processed, total)
    finally:
        llm._server = counting.inner
    asyncio.run(collect_reply(llm, live, GREEDY))
    assert llm.last_usage.processed <= 2, llm.last_usage  # the live prompt stayed in its slot


KILLED_CHILD = textwrap.dedent("""
    import dataclasses, sys, time
    from pathlib import Path
    from voice_companion.companion.companion import open_companion
    from voice_companion.core.config import Settings

    settings = Settings()
    settings.llm.tier = "tiny"
    settings.memory.llm_extraction = "off"
    settings.paths = dataclasses.replace(settings.paths, data_dir=Path(sys.argv[1]))
    conversation = open_companion(settings).conversation(settings)
    conversation.record("My dog is called Biscuit and he is old.", "Biscuit sounds lovely!")
    conversation.record("I live in Dublin near the sea.", "Dublin by the sea, how nice.")
    print("recorded", flush=True)
    time.sleep(60)  # killed here: the end-of-session work never runs
""")


def test_a_process_killed_before_its_end_of_session_work_loses_nothing(tmp_path):
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(data)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "recorded"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    settings = Settings()
    settings.llm.tier = "tiny"
    settings.paths = dataclasses.replace(settings.paths, data_dir=data)
    companion = open_companion(settings)
    killed = companion.store.sessions(5)[0]
    assert killed.ended is None and killed.turns == 4  # every turn was saved as it happened
    conversation = companion.conversation(settings)  # the next start finishes it
    finished = next(s for s in companion.store.sessions(5) if s.id == killed.id)
    assert finished.ended is not None and "Biscuit" in finished.summary
    assert any("Biscuit" in m.text for m in companion.store.memories(("fact",)))
    assert conversation.session_id != killed.id
    conversation.close()
    companion.close()


def test_a_live_session_of_another_process_is_not_taken_for_an_orphan(tmp_path):
    from voice_companion.companion.memory.worker import finish_orphaned_sessions

    store = SQLiteMemoryStore(tmp_path / "memory.db")
    from voice_companion.companion.memory.conversation import OWNER

    live = store.start_session("embedded", OWNER)  # this very process: alive
    dead = store.start_session("embedded", OWNER.rsplit(":", 1)[0] + ":999999999")
    assert finish_orphaned_sessions(store) == 1
    ended = {s.id: s.ended for s in store.sessions(5)}
    assert ended[live] is None and ended[dead] is not None


@pytest.mark.slow  # chats with the real LLM, twice
def test_chat_ends_its_session_without_a_traceback_and_opens_warm_next_time(tmp_path):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')
    env = {**os.environ, "VOICE_COMPANION_HOME": str(home)}

    def chat(lines: str) -> tuple[list[dict], str]:
        done = subprocess.run(
            [sys.executable, "-m", "voice_companion", "chat", "--json"],
            input=lines,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(x) for x in done.stdout.splitlines()], done.stderr

    replies, err = chat("Hi, my name is Sam.\nMy cat is called Mochi.\n")
    assert len(replies) == 2 and "Traceback" not in err and "memory worker failed" not in err
    replies, err = chat("What is my cat called?\n")
    assert "is ready: restored" in err, err[-2000:]
    assert replies[0]["prefill_tokens"] < 60  # the question, not the whole prompt
    store = SQLiteMemoryStore(home / "data" / "companions" / "mia" / "memory.db")
    sessions = store.sessions(5)
    assert len(sessions) == 2 and all(s.ended is not None and s.summary for s in sessions)


@pytest.mark.slow  # chats with the real LLM
def test_forgetting_a_memory_drops_the_saved_state_and_the_window(tmp_path):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')
    env = {**os.environ, "VOICE_COMPANION_HOME": str(home)}
    run = lambda *a, stdin="": subprocess.run(
        [sys.executable, "-m", "voice_companion", *a],
        input=stdin,  # noqa: E731
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run("chat", "--json", stdin="My name is Sam.\n").returncode == 0
    folder = home / "data" / "companions" / "mia"
    assert list((folder / "llm-state").glob("*.bin"))
    listed = json.loads(run("memory", "list", "--json").stdout)
    fact = next(m for m in listed["memories"] if "Sam" in m["text"])
    assert run("memory", "forget", str(fact["id"])).returncode == 0
    assert not (folder / "llm-state").exists()
    assert SQLiteMemoryStore(folder / "memory.db").get_meta("window") is None


@pytest.mark.slow  # chats with the real LLM
def test_the_demo_is_not_a_memory(tmp_path):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')
    env = {**os.environ, "VOICE_COMPANION_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "voice_companion", "demo", "--json", "--output-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["reply"]
    store = SQLiteMemoryStore(home / "data" / "companions" / "mia" / "memory.db")
    assert store.turn_count() == 0 and not store.sessions(5) and not store.memories(("fact",))
    assert "Last time" not in open_companion_greeting(home)


def open_companion_greeting(home: Path) -> str:
    settings = Settings()
    settings.paths = dataclasses.replace(settings.paths, data_dir=home / "data")
    return open_companion(settings).greeting()


def test_the_profile_changes_only_at_its_end_when_facts_are_learned():
    """A roll rebuilds the profile; what it already showed stays first and in order, so
    the rolled window shares its beginning with the last one (cheap to prefill)."""
    from voice_companion.companion.memory.types import Memory

    facts = [Memory(i, "fact", f"The user likes thing number {i} very much", 0.5) for i in range(1, 40)]
    before = [m.id for m in context.pick_profile(facts, 200)]
    grown = facts + [
        Memory(40, "fact", "The user has a new neighbour called Priya", 0.5),
        Memory(41, "fact", "The user's name is Sam", 1.0),
    ]
    after = [m.id for m in context.pick_profile(grown, 200)]
    assert 41 in after and 40 not in after  # identity always; a newer equal fact waits for recall
    assert after[: len(before) - 1] == before[:-1]  # only the end moved


def test_a_server_stopping_saves_the_window_as_it_is_instead_of_rolling_it(tmp_path, llm):
    """No time to prefill a rolled window (a server stopping right after a call): the
    window as it is, already in the cache, is saved, and the next session opens warm.
    (Rolled and saved unprepared, the next phone call waited ~15 s.)"""
    from voice_companion.companion.memory.conversation import ROLL_AT_SESSION_END

    store = SQLiteMemoryStore(tmp_path / "memory.db")
    state = tmp_path / "state"
    conversation = MemoryConversation(store, "You are Mia.", context.Budget(700), state_dir=state)
    turn = 0
    while conversation._fill() <= ROLL_AT_SESSION_END:
        conversation.record(f"Turn {turn}: I watered the tomatoes and read a chapter.", f"Lovely, turn {turn}!")
        turn += 1
    assert conversation.rolls == 0
    first = conversation.window.first_turn
    assert asyncio.run(conversation.save_for_next(llm, roll=False))
    assert conversation.rolls == 0 and conversation.window.first_turn == first
    conversation.close()
    again = MemoryConversation(store, "You are Mia.", context.Budget(700), state_dir=state)
    assert asyncio.run(again.warm_up(llm)) == "restored"
    again.close()


def test_a_window_rolled_at_the_end_opens_the_next_session_warm_with_its_recalled_notes(tmp_path, llm):
    """The roll at a session's end is kept with its state and with what each message had
    recalled (ChatMessage.context): saved without them, the next session's prompt differed
    from the saved one and was prefilled cold."""
    from voice_companion.companion.memory.conversation import ROLL_AT_SESSION_END

    store = SQLiteMemoryStore(tmp_path / "memory.db")
    store.add_memory("note", "The user's tomatoes are called Rosa and Bella", importance=0.3)
    state = tmp_path / "state"
    conversation = MemoryConversation(store, "You are Mia.", context.Budget(700), state_dir=state)
    turn = 0
    while conversation._fill() <= ROLL_AT_SESSION_END:
        text = f"Turn {turn}: do you remember my tomatoes Rosa and Bella?" if turn % 3 == 0 else f"Turn {turn}: hi."
        conversation.prompt_for(text)
        conversation.record(text, f"Of course, turn {turn}!")
        turn += 1
    assert any(m.context for m in conversation.history)
    assert asyncio.run(conversation.save_for_next(llm))
    assert conversation.rolls == 1
    conversation.close()
    again = MemoryConversation(store, "You are Mia.", context.Budget(700), state_dir=state)
    assert again.window.first_turn == conversation.window.first_turn
    assert [m.prompt_text for m in again.prefix()] == [m.prompt_text for m in conversation.prefix()]
    assert asyncio.run(again.warm_up(llm)) == "restored"
    again.close()
