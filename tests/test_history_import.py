"""`voice-companion history import` (issue 19): each service's export, written here from
its published format, into a real SQLite memory file: live branch only, hidden and tool
messages and reasoning left out, images noted, both date styles, sessions by gap,
nothing twice on re-import, a malformed file imports nothing, a killed import resumes,
and the live conversation's ids and window are untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
from conftest import one_line_error, run_cli, small_settings

from voice_companion.companion.imports import formats, importer
from voice_companion.companion.memory.sqlite_schema import IMPORTED_BELOW
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14


def node(nid, parent, role, text, t, children=(), **extra):
    message = {
        "id": nid,
        "author": {"role": role},
        "create_time": t,
        "content": extra.pop("content", {"content_type": "text", "parts": [text]}),
        "recipient": extra.pop("recipient", "all"),
        "metadata": extra.pop("metadata", {}),
    }
    return {"id": nid, "message": message, "parent": parent, "children": list(children)}


def chatgpt_export(folder: Path) -> Path:
    """Two conversations; the first with a regenerated reply (two branches), custom
    instructions, a hidden system message, a tool call, reasoning, an image, and a
    second day (a new session)."""
    m = {
        "root": {"id": "root", "message": None, "parent": None, "children": ["sys"]},
        "sys": node("sys", "root", "system", "", T0, ["ci"], metadata={"is_visually_hidden_from_conversation": True}),
        "ci": node(
            "ci",
            "sys",
            "user",
            "",
            T0,
            ["u1"],
            content={
                "content_type": "user_editable_context",
                "user_profile": "I am Sam, a nurse.",
                "user_instructions": "Call me Sammy. Be warm.",
            },
        ),
        "u1": node("u1", "ci", "user", "My cat is called Mochi.", T0 + 10, ["a1_old", "a1"]),
        "a1_old": node("a1_old", "u1", "assistant", "OLD REGENERATED REPLY", T0 + 11),
        "a1": node("a1", "u1", "assistant", "Mochi is a lovely name!", T0 + 12, ["think"]),
        "think": node(
            "think", "a1", "assistant", "", T0 + 13, ["tool"], content={"content_type": "thoughts", "thoughts": []}
        ),
        "tool": node("tool", "think", "assistant", "search(cats)", T0 + 14, ["toolout"], recipient="browser"),
        "toolout": node("toolout", "tool", "tool", "results", T0 + 15, ["u2"]),
        "u2": node(
            "u2",
            "toolout",
            "user",
            "",
            T0 + DAY,
            ["a2"],
            content={
                "content_type": "multimodal_text",
                "parts": [{"content_type": "image_asset_pointer", "asset_pointer": "file-1"}, "Look at her!"],
            },
        ),
        "a2": node("a2", "u2", "assistant", "She is adorable.", T0 + DAY + 5, metadata={"model_slug": "gpt-4o"}),
    }
    conversations = [
        {"title": "Cats", "create_time": T0, "id": "conv-1", "current_node": "a2", "mapping": m},
        {
            "title": "Work",
            "create_time": T0 + 2 * DAY,
            "conversation_id": "conv-2",
            "current_node": "w2",
            "mapping": {
                "w1": node("w1", None, "user", "Night shift again tomorrow.", T0 + 2 * DAY, ["w2"]),
                "w2": node("w2", "w1", "assistant", "Take care of yourself.", T0 + 2 * DAY + 3),
            },
        },
    ]
    path = folder / "conversations.json"
    path.write_text(json.dumps(conversations), encoding="utf-8")
    return path


def claude_export(folder: Path) -> Path:
    path = folder / "claude.json"
    path.write_text(
        json.dumps(
            [
                {
                    "uuid": "c-1",
                    "name": "Garden",
                    "created_at": "2024-05-01T10:00:00Z",
                    "chat_messages": [
                        {
                            "uuid": "m1",
                            "sender": "human",
                            "text": "I planted tomatoes.",
                            "created_at": "2024-05-01T10:00:00Z",
                        },
                        {
                            "uuid": "m2",
                            "sender": "assistant",
                            "text": "",
                            "content": [{"type": "text", "text": "Lovely, which kind?"}],
                            "created_at": "2024-05-01T10:00:05.123456+00:00",
                        },
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    return path


def sillytavern_chat(folder: Path) -> Path:
    lines = [
        {"user_name": "Sam", "character_name": "Seraphina", "create_date": "2024-9-28@01h02m03s"},
        {
            "name": "Seraphina",
            "is_user": False,
            "send_date": "September 28, 2024 1:02am",
            "mes": "*smiles* Welcome back.",
        },
        {
            "name": "Sam",
            "is_user": True,
            "send_date": 1727485380000,
            "mes": "I missed you.",
            "swipes": ["I missed you."],
        },
        {"name": "System", "is_system": True, "send_date": 1727485390000, "mes": "[note]"},
        {
            "name": "Seraphina",
            "is_user": False,
            "send_date": "September 28, 2024 1:03am",
            "mes": "I missed you too.",
            "swipes": ["first try", "I missed you too."],
            "swipe_id": 1,
        },
    ]
    path = folder / "Seraphina - 2024-9-28.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def characterai_export(folder: Path) -> Path:
    path = folder / "cai.json"
    path.write_text(
        json.dumps(
            {
                "info": {"character": {"name": "Luna"}},
                "histories": {
                    "histories": [
                        {
                            "msgs": [
                                {"src": {"is_human": False, "name": "Luna"}, "text": "Hello traveller."},
                                {"src": {"is_human": True, "name": "Sam"}, "text": "Hi Luna, I live in Leeds."},
                            ]
                        }
                    ]
                },
            }
        ),
        encoding="utf-8",
    )
    return path


def test_chatgpt_follows_the_live_branch_and_keeps_only_what_was_said(tmp_path):
    [cats, work] = list(formats.read(chatgpt_export(tmp_path)))
    assert [(m.role, m.text) for m in cats.messages] == [
        ("user", "My cat is called Mochi."),
        ("assistant", "Mochi is a lovely name!"),
        ("user", "[image]\nLook at her!"),
        ("assistant", "She is adorable."),
    ]
    assert cats.instructions == "I am Sam, a nurse.\nCall me Sammy. Be warm." and cats.model == "gpt-4o"
    assert cats.messages[0].time == T0 + 10 and cats.key == "chatgpt:conv-1" and work.key == "chatgpt:conv-2"
    assert [len(s.turns) for s in importer.sessions_of(cats, "chatgpt")] == [2, 2]  # the next day: a new session


def test_every_format_is_recognised_and_read_with_its_dates(tmp_path):
    chatgpt = chatgpt_export(tmp_path)
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as z:
        z.write(chatgpt, "export/conversations.json")
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(
        '{"role": "user", "content": "Hi", "time": "2024-01-02T03:04:05Z"}\n'
        '{"role": "assistant", "content": "Hello!", "time": 1704164650}\n',
        encoding="utf-8",
    )
    found = {
        p.name: formats.detect(p)
        for p in (
            chatgpt,
            tmp_path / "export.zip",
            claude_export(tmp_path),
            sillytavern_chat(tmp_path),
            characterai_export(tmp_path),
            jsonl,
        )
    }
    assert list(found.values()) == ["chatgpt", "chatgpt", "claude", "sillytavern", "characterai", "jsonl"]
    assert len(list(formats.read(tmp_path / "export.zip"))) == 2
    [claude] = formats.read(tmp_path / "claude.json")
    assert [m.text for m in claude.messages] == ["I planted tomatoes.", "Lovely, which kind?"]
    assert claude.messages[1].time == pytest.approx(1714557605.123456)
    [tavern] = formats.read(tmp_path / "Seraphina - 2024-9-28.jsonl")
    assert [(m.role, m.text) for m in tavern.messages] == [
        ("assistant", "*smiles* Welcome back."),
        ("user", "I missed you."),
        ("assistant", "I missed you too."),
    ]
    assert tavern.user_name == "Sam" and tavern.assistant_name == "Seraphina"
    assert tavern.messages[1].time == 1727485380.0 and tavern.messages[0].time is not None  # ms and "1:02am"
    [cai] = formats.read(tmp_path / "cai.json")
    assert cai.assistant_name == "Luna" and cai.messages[1].text == "Hi Luna, I live in Leeds."
    [mine] = formats.read(jsonl)
    assert [m.time for m in mine.messages] == [1704164645.0, 1704164650.0]


def test_import_stores_turns_below_the_live_ones_and_adds_nothing_twice(tmp_path):
    store = SQLiteMemoryStore(tmp_path / "memory.db")
    live = store.start_session()
    store.add_turn(live, "user", "Hello from today.")
    export = chatgpt_export(tmp_path)
    report = importer.import_history(store, export, "auto")
    assert (report.conversations, report.sessions, report.turns, report.already) == (2, 3, 6, 0)
    turns = store.turns(limit=100)
    assert turns[-1].text == "Hello from today." and turns[-1].id > 0  # the live turn stays the newest
    imported = turns[:-1]
    assert all(t.id < IMPORTED_BELOW for t in imported)
    assert [t.time for t in imported] == sorted(t.time for t in imported)  # ids rise with time
    assert [t.text for t in imported][:2] == ["My cat is called Mochi.", "Mochi is a lovely name!"]
    assert [h.item.text for h in store.search_turns("Mochi", before_id=turns[-1].id)] == ["My cat is called Mochi."]
    assert store.imported_counts() == {"chatgpt": 6}
    again = importer.import_history(store, export, "auto")
    assert (again.turns, again.already) == (0, 6) and store.turn_count() == 7
    after = store.add_turn(store.start_session(), "user", "And tomorrow.")
    assert after.id == turns[-1].id + 1  # what is lived here keeps counting up
    store.close()


def test_a_fresh_companion_has_only_positive_ids_after_an_import(tmp_path):
    store = SQLiteMemoryStore(tmp_path / "memory.db")
    importer.import_history(store, claude_export(tmp_path), "auto")
    session = store.start_session()
    assert session == 1 and store.add_turn(session, "user", "hi").id == 1
    store.close()


def test_the_command_lists_chooses_and_reports_and_a_bad_file_imports_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    export = chatgpt_export(tmp_path)
    listed = json.loads(run_cli("history", "import", str(export), "--list", "--json").stdout)["conversations"]
    assert [(c["title"], c["messages"], c["id"]) for c in listed] == [("Cats", 4, "conv-1"), ("Work", 2, "conv-2")]
    done = run_cli("history", "import", str(export), "--conversation", "work", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["turns"] == 2
    shown = run_cli("history", "import", str(export))
    assert shown.returncode == 0 and "imported 4 turns in 2 sessions from 2 conversations" in shown.stdout, shown.stdout
    assert "2 were there from an earlier import" in shown.stdout
    found = run_cli("memory", "search", "Mochi", "--json")
    assert "Mochi" in found.stdout, found.stdout
    for bad, text in (("empty.json", ""), ("cut.json", export.read_text()[:700]), ("nope.json", '{"hello": 1}')):
        (tmp_path / bad).write_text(text, encoding="utf-8")
        fmt = ["--format", "chatgpt"] if bad != "nope.json" else []
        line = one_line_error(run_cli("history", "import", str(tmp_path / bad), *fmt))
        assert bad in line, line
    db = SQLiteMemoryStore(tmp_path / "home" / "data" / "companions" / "mia" / "memory.db")
    assert db.turn_count() == 6  # nothing from the bad files
    db.close()


@pytest.mark.slow  # 10,000 sessions written one transaction each, twice
def test_a_killed_import_resumes_where_it_stopped(tmp_path, monkeypatch):
    import sqlite3

    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    lines = 6_000
    big = tmp_path / "big.jsonl"
    with open(big, "w", encoding="utf-8") as f:  # 3,000 sessions a day apart: 3,000 transactions
        for n in range(lines):
            role = "user" if n % 2 == 0 else "assistant"
            f.write(json.dumps({"role": role, "content": f"line {n} " * 8, "time": T0 + (n // 2) * DAY}) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_companion", "history", "import", str(big), "--no-progress", "--no-vectors"],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    db_path = tmp_path / "home" / "data" / "companions" / "mia" / "memory.db"

    def written() -> int:  # read-only, so the probe never holds up the import
        try:
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as db:
                return db.execute("SELECT count(*) FROM turns").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    deadline = time.time() + 60
    while written() < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    probe = SQLiteMemoryStore(db_path)  # read-write: the killed writer's WAL is recovered
    partial = probe.turn_count()
    probe.close()
    assert 0 < partial < lines and partial % 2 == 0  # killed mid-import, between two sessions
    resumed = run_cli("history", "import", str(big), "--json", "--no-vectors")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["already"] == partial and result["turns"] == lines - partial
    probe = SQLiteMemoryStore(db_path)
    assert probe.turn_count() == lines and probe.integrity() == "ok"
    probe.close()


def test_what_was_said_only_in_the_imported_history_is_recalled_with_its_year(tmp_path, monkeypatch):
    """`memory recall` shows what rides with a message into the prompt: an imported turn
    from 2023 comes back with its date and year."""
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    assert run_cli("history", "import", str(chatgpt_export(tmp_path))).returncode == 0
    shown = run_cli("memory", "recall", "Do you remember what my cat is called?", "--json")
    assert shown.returncode == 0, shown.stderr
    recall = json.loads(shown.stdout)["recall"]
    assert "the user said: “My cat is called Mochi.”" in recall and "Nov 2023" in recall, recall
    piped = run_cli("memory", "recall", "--json", stdin="Do you remember my cat?\nIs Mochi still my cat?\n")
    lines = [json.loads(line) for line in piped.stdout.splitlines()]
    assert [r["message"] for r in lines] == ["Do you remember my cat?", "Is Mochi still my cat?"]
    assert all("Mochi" in r["recall"] for r in lines), lines  # the night shift is in the window: not recalled
    one_line_error(run_cli("memory", "recall", stdin=""), "stdin was empty")


def test_imported_sessions_get_their_summary_and_the_facts_stated_in_them(tmp_path):
    store = SQLiteMemoryStore(tmp_path / "memory.db")
    store.add_memory("fact", "The user's cat is called Luna", key="rel:cat")  # said here, later: it stays
    importer.import_history(store, chatgpt_export(tmp_path), "auto")
    assert store.count_unlearned_imports() == 3 and importer.learn(store) == 3 and importer.learn(store) == 0
    summaries = [s.summary for s in store.sessions(10) if s.summary]
    assert any("Mochi" in s and "2023" in s for s in summaries), summaries
    cat = [m for m in store.memories(("fact",)) if m.key == "rel:cat"]
    assert [m.text for m in cat] == ["The user's cat is called Luna"]  # not replaced by the older import
    store.close()
    fresh = SQLiteMemoryStore(tmp_path / "fresh.db")
    importer.import_history(fresh, chatgpt_export(tmp_path), "auto")
    importer.learn(fresh)
    [mochi] = [m for m in fresh.memories(("fact",)) if m.key == "rel:cat"]
    assert mochi.text == "The user's cat is called Mochi" and mochi.time == T0 + 10  # dated when said
    assert mochi.source_turn is not None and mochi.source_turn < IMPORTED_BELOW
    fresh.close()


def test_a_new_name_brings_the_companion_home_with_a_drafted_persona(tmp_path, monkeypatch):
    """Issue 19: `--companion Aria` (no such companion yet) makes a new one from the
    export: its history, and a persona drafted from what is there (custom instructions,
    the language, pet names, real exchanges); the companion in use stays as it is."""
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    export = tmp_path / "aria.jsonl"
    lines = []
    for n in range(6):
        lines.append({"role": "user", "content": f"I had a long day number {n}.", "time": T0 + n * DAY})
        lines.append(
            {
                "role": "assistant",
                "content": f"Oh sweetheart, day {n} sounds tiring. Rest now.",
                "time": T0 + n * DAY + 5,
            }
        )
    export.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    done = run_cli("history", "import", str(export), "--companion", "Aria")
    assert done.returncode == 0, done.stderr
    assert "aria is a new companion, Aria" in done.stdout and "persona use aria" in done.stdout
    shown = json.loads(run_cli("persona", "show", "aria", "--json").stdout)["persona"]
    assert shown["name"] == "Aria" and shown["language"] == "en"
    assert "“sweetheart”" in shown["speaking_style"] and "“Oh sweetheart”" in shown["speaking_style"], shown
    assert shown["example_dialogue"].startswith("User: I had a long day number 0.\nAria: Oh sweetheart")
    listed = {p["id"]: p for p in json.loads(run_cli("persona", "list", "--json").stdout)["personas"]}
    assert listed["mia"]["active"] and not listed["aria"]["active"]  # never put in place by itself
    found = run_cli("memory", "search", "long day", "--companion", "aria", "--json")
    assert "long day" in found.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("[{", encoding="utf-8")
    one_line_error(run_cli("history", "import", str(bad), "--format", "chatgpt", "--companion", "Nobody"))
    assert "nobody" not in {p["id"] for p in json.loads(run_cli("persona", "list", "--json").stdout)["personas"]}


@pytest.mark.slow  # writes and imports a 50 MB export
def test_a_50_mb_export_streams_with_bounded_memory_and_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    export = tmp_path / "conversations.json"
    text = " ".join(["a long line about the garden, the rain and the cat"] * 6)
    with open(export, "w", encoding="utf-8") as f:
        f.write("[")
        for c in range(1_560):
            mapping = {
                f"c{c}n{n}": node(
                    f"c{c}n{n}",
                    f"c{c}n{n - 1}" if n else None,
                    ("user", "assistant")[n % 2],
                    f"{n} {text}",
                    T0 + c * DAY + n,
                )
                for n in range(60)
            }
            conversation = {
                "title": f"chat {c}",
                "create_time": T0 + c * DAY,
                "id": f"conv{c}",
                "current_node": f"c{c}n59",
                "mapping": mapping,
            }
            f.write(("," if c else "") + json.dumps(conversation))
        f.write("]")
    assert export.stat().st_size > 50e6
    peak_kb = 0
    with open(tmp_path / "out.txt", "w") as out_file, open(tmp_path / "err.txt", "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voice_companion", "history", "import", str(export), "--no-vectors"],
            env={**os.environ},
            stdout=out_file,
            stderr=err_file,
        )
        while proc.poll() is None:  # its own peak since exec (rusage would count the forked test process)
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(
                    peak_kb, int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
                )
            except (OSError, StopIteration, ValueError):
                pass
            time.sleep(0.1)
    out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "imported 93600 turns in 1560 sessions from 1560 conversations" in out, out
    assert "importing" in err and "93600/93600" in err  # the progress bar went to the end
    assert 0 < peak_kb < 150_000, peak_kb  # the 50 MB file never sits in memory whole
    store = SQLiteMemoryStore(tmp_path / "home" / "data" / "companions" / "mia" / "memory.db")
    assert store.turn_count() == 93_600
    store.close()


@pytest.mark.slow  # the real STT, the small brain and Mia's voice, in a fresh process
def test_the_companion_answers_by_voice_from_what_only_the_imported_history_holds(tmp_path, monkeypatch, spoken):
    """Issue 19's acceptance: a spoken question about something said once, a year ago, in
    another service's chat (among 150 everyday lines), answered aloud with it."""
    small_settings()  # skips where the small brain is not installed
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    export = tmp_path / "history.jsonl"
    said = [f"I went for a walk by the river on day {n}" for n in range(150)]
    said.insert(70, "by the way my dentist is called Dr Okafor, very gentle")
    with open(export, "w", encoding="utf-8") as f:
        for n, line in enumerate(said):
            when = T0 + n * DAY / 4  # 150 sessions-worth of days, a year before the test's date
            f.write(json.dumps({"role": "user", "content": line, "time": when}) + "\n")
            f.write(json.dumps({"role": "assistant", "content": "That sounds lovely.", "time": when + 9}) + "\n")
    assert run_cli("history", "import", str(export), "--no-progress").returncode == 0
    out = tmp_path / "answer.wav"
    question = spoken("What is my dentist called?")
    proc = run_cli("reply", "--input", str(question), "--output", str(out), "--llm", "small", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "dentist" in result["transcript"].lower()
    assert "okafor" in result["reply"].lower(), result["reply"]
    audio, rate = sf.read(out, dtype="int16")
    assert len(audio) > rate  # spoken aloud
