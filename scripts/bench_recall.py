#!/usr/bin/env python3
"""Recall over a long imported history (issue 19): does what the user said once, months
ago, come back when they ask? Against a plain BM25 top-10 in the same run.

    python scripts/bench_recall.py [--turns 100000] [--formats jsonl,chatgpt,...] [--json]

A synthetic history (English and Chinese, everyday filler made from parts, sessions
spread over the last ~400 days) with things mentioned once in passing is written as each
service exports it (JSONL, ChatGPT, Claude, SillyTavern, Character.AI) and imported with
`history import`'s importer; then every question goes through the companion's own
context builder (what `memory recall` shows: the recall that rides with the message,
within the tier's recall budget). Question kinds: a fact (shares a word with the
mention), meaning (shares none), when (the recalled line must carry the day it was
said) and combined (two mentions, both needed). A hit: every expected word is in what
is recalled. The baseline: SQLite FTS5's bm25 over all user turns (unicode61, the
question's words OR-ed), top 10, each with its day. Also: import speed and the prompt
build time (p50/p95).
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

from voice_companion.companion.imports import importer  # noqa: E402
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore  # noqa: E402
from voice_companion.core.text import has_cjk  # noqa: E402

# Everyday filler from parts (~7,700 English and 1,250 Chinese lines, not a dozen repeated):
# people, places and chores a real history has, so a question's words also find lines
# that are not the answer ("my sister called…" for "Where does my sister live now?").
EN_WHO = ["I", "my friend", "my sister", "my colleague", "we", "my neighbour", "my mum", "the kids"]
EN_DID = [
    "had a long day at work",
    "watched a film",
    "cooked pasta for dinner",
    "went for a walk by the river",
    "tidied the kitchen",
    "tried a new coffee place",
    "talked about the holidays",
    "fixed the bike",
    "read a few chapters",
    "played cards",
    "went to the market",
    "cleaned the car",
    "called the bank",
    "planted tomatoes",
    "baked bread",
]
EN_WHEN = [
    "this morning",
    "tonight",
    "after lunch",
    "before the rain",
    "at the weekend",
    "yesterday",
    "on the way home",
]
EN_HOW = ["and it was really calm", "and the bus was late again", "and it was better than expected", ""]
EN_HOW += ["but my knee hurts a bit", "and I feel tired now", "which was nice", "and I laughed a lot"]
ZH_WHEN = ["今天", "昨天晚上", "周末", "下午", "早上"]
ZH_WHO = ["我", "我妈妈", "我同事", "我们", "邻居"]
ZH_DID = ["上班很累", "看了一部电影", "做了面条", "在河边散步", "打扫了厨房", "去了新开的咖啡店"]
ZH_DID += ["读了几章书", "去菜市场买菜", "洗了车", "烤了面包"]
ZH_HOW = ["，挺开心的", "，公交车又晚点了", "，有点累", "", "，天气很好"]


def filler(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return "".join(rng.choice(part) for part in (ZH_WHEN, ZH_WHO, ZH_DID, ZH_HOW))
    return " ".join(rng.choice(part) for part in (EN_WHO, EN_DID, EN_WHEN, EN_HOW)).strip()


REPLIES = ["That sounds like quite a day.", "Oh, tell me more!", "I'm glad you told me.", "听起来不错。"]


@dataclass(frozen=True)
class Question:
    """What the user said once in passing (one or more lines), a question about it, and
    the words that must all come back. kind: "fact" (one mention, the question shares a
    word with it), "meaning" (the question shares no content word with the mention),
    "when" (the answer is the day it was said: the recalled line must carry its date) or
    "combined" (two mentions, both needed)."""

    kind: str
    said: tuple[str, ...]
    question: str
    answers: tuple[str, ...] = ()


QUESTIONS = [
    Question(
        "fact", ("by the way my sister Lea moved to Porto last spring",), "Where does my sister live now?", ("Porto",)
    ),
    Question("fact", ("my dentist is called Dr Okafor, very gentle",), "What is my dentist called?", ("Okafor",)),
    Question(
        "fact", ("I started learning the cello in the evenings",), "Which instrument did I start learning?", ("cello",)
    ),
    Question(
        "fact",
        ("my neighbour's dog is a grey whippet named Biscuit",),
        "What is my neighbour's dog called?",
        ("Biscuit",),
    ),
    Question("fact", ("I'm allergic to kiwis, found out the hard way",), "What fruit am I allergic to?", ("kiwi",)),
    Question(
        "fact",
        ("my grandmother's recipe for plum cake uses cardamom",),
        "What spice is in my grandmother's plum cake?",
        ("cardamom",),
    ),
    Question("fact", ("我小时候住在桂林，山很美",), "我小时候住在哪里？", ("桂林",)),
    Question("fact", ("我的好朋友小周在杭州开了一家茶馆",), "小周在哪里开了茶馆？", ("杭州",)),
    Question(
        "fact", ("I ran my first half marathon in Lisbon",), "Where did I run my first half marathon?", ("Lisbon",)
    ),
    Question("fact", ("my boss Ingrid is leaving the company in March",), "Who is leaving the company?", ("Ingrid",)),
    Question(
        "meaning",
        ("my cat Miso hides under the bed whenever I vacuum",),
        "Which of my pets is scared of cleaning?",
        ("Miso",),
    ),
    Question("meaning", ("I work nights as a nurse on the children's ward",), "What is my job?", ("nurse",)),
    Question("meaning", ("my husband Ravi proposed to me on a ferry to Skye",), "Where did I get engaged?", ("Skye",)),
    Question("meaning", ("我最喜欢吃外婆做的红烧肉",), "我最爱的菜是什么？", ("红烧肉",)),
    Question("when", ("I finally passed my driving test today",), "When did I pass my driving test?"),
    Question("when", ("we adopted a rescue dog called Pepper this morning",), "When did we adopt Pepper?"),
    Question("when", ("我今天去医院拔了智齿",), "我是什么时候拔的智齿？"),
    Question(
        "combined",
        ("Marco and I spent a weekend in Ghent", "Marco and I took the train to Bruges for the day"),
        "Which cities did I visit with Marco?",
        ("Ghent", "Bruges"),
    ),
    Question(
        "combined",
        ("my daughter Noor plays the violin", "Noor has her violin exam on a Saturday in June"),
        "What is my daughter's exam?",
        ("Noor", "violin exam"),
    ),
]


def history(turns: int, seed: int = 7) -> tuple[list[list[tuple[str, str, float]]], dict[str, float]]:
    """`turns` lines in sessions over about a year, the mentions spread through them:
    (sessions of (role, text, time), when each mention was said)."""
    rng = random.Random(seed)
    start = time.time() - 400 * 86400
    day_step = 400 * 86400 / max(1, turns // 60) / 1.33  # the sessions spread over ~400 days, up to today
    mentions = [line for q in QUESTIONS for line in q.said]
    spots = dict(zip(sorted(rng.sample(range(100, turns // 2 - 100), len(mentions))), mentions, strict=True))
    said_at: dict[str, float] = {}
    sessions: list[list[tuple[str, str, float]]] = []
    when = start
    for n in range(turns // 2):
        if n % 30 == 0:
            when += rng.choice((1, 1, 2)) * day_step  # a new session every day or two (at 100k turns: hours)
            sessions.append([])
        when += rng.uniform(20, 90)
        said = filler(rng) + "."
        if n in spots:
            said = spots[n] + "."
            said_at[spots[n]] = when
        sessions[-1] += [("user", said, when), ("assistant", rng.choice(REPLIES), when + 5)]
    # the lines' own minutes add ~a month to the ~400 days: shifted so the last one was an
    # hour ago (a history that ran into the future made its newest small talk look fresh)
    late = when + 5 - (time.time() - 3600)
    sessions = [[(role, text, t - late) for role, text, t in session] for session in sessions]
    return sessions, {line: t - late for line, t in said_at.items()}


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat().replace("+00:00", "Z")


def write_export(fmt: str, sessions: list[list[tuple[str, str, float]]], folder: Path) -> Path:
    """The same history as each service exports it (the shapes `history import` reads)."""
    if fmt == "jsonl":
        path = folder / "history.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for session in sessions:
                for role, text, when in session:
                    f.write(json.dumps({"role": role, "content": text, "time": when}, ensure_ascii=False) + "\n")
        return path
    if fmt == "sillytavern":
        path = folder / "Mia - chat.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"user_name": "Sam", "character_name": "Mia"}) + "\n")
            for session in sessions:
                for role, text, when in session:
                    line = {"name": "Sam" if role == "user" else "Mia", "is_user": role == "user", "is_system": False}
                    line |= {"send_date": int(when * 1000), "mes": text}
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        return path
    path = folder / f"{fmt}.json"
    if fmt == "chatgpt":
        data: Any = []
        for n, session in enumerate(sessions):
            mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
            parent = "root"
            for m, (role, text, when) in enumerate(session):
                nid = f"c{n}m{m}"
                message = {"author": {"role": role}, "content": {"content_type": "text", "parts": [text]}}
                message |= {"create_time": when, "recipient": "all", "metadata": {}}
                mapping[nid] = {"id": nid, "message": message, "parent": parent, "children": []}
                mapping[parent]["children"].append(nid)
                parent = nid
            conversation = {"id": f"conv-{n}", "conversation_id": f"conv-{n}", "title": f"chat {n}"}
            data.append(conversation | {"create_time": session[0][2], "current_node": parent, "mapping": mapping})
    elif fmt == "claude":
        data = [
            {
                "uuid": f"conv-{n}",
                "name": f"chat {n}",
                "created_at": _iso(session[0][2]),
                "chat_messages": [
                    {"uuid": f"{n}-{m}", "sender": "human" if role == "user" else "assistant", "text": text}
                    | {"created_at": _iso(when)}
                    for m, (role, text, when) in enumerate(session)
                ],
            }
            for n, session in enumerate(sessions)
        ]
    elif fmt == "characterai":
        histories = [
            {
                "external_id": f"h{n}",
                "msgs": [
                    {"src": {"is_human": role == "user", "name": "Sam" if role == "user" else "Mia"}, "text": text}
                    | {"created": _iso(when)}
                    for role, text, when in session
                ],
            }
            for n, session in enumerate(sessions)
        ]
        data = {"histories": {"histories": histories}}
    else:
        raise ValueError(fmt)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def bm25_top10(db_path: Path, question: str, now: float) -> str:
    """The baseline: FTS5 bm25 over the user's words (unicode61), top 10, each with its
    day as recall writes it (so a "when" question can be answered from it too)."""
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS plain USING fts5(text, tokenize='unicode61')")
        if not db.execute("SELECT count(*) FROM plain").fetchone()[0]:
            db.execute("INSERT INTO plain(rowid, text) SELECT id, text FROM turns WHERE role = 'user'")
        words = [
            w for w in "".join(c if c.isalnum() else " " for c in question).split() if len(w) > 2 or ord(w[0]) > 0x2E80
        ]
        if not words:
            return ""
        query = " OR ".join(f'"{w}"' for w in words)
        rows = db.execute(
            "SELECT plain.text, turns.time FROM plain JOIN turns ON turns.id = plain.rowid"
            " WHERE plain MATCH ? ORDER BY bm25(plain) LIMIT 10",
            (query,),
        ).fetchall()
    return "\n".join(f"{day(when, now)} {text}" for text, when in rows)


def day(when: float, now: float) -> str:
    """A day as the recall writes it (with the year when it is not this one)."""
    then, today = time.localtime(when), time.localtime(now)
    return time.strftime("%d %b" if then.tm_year == today.tm_year else "%d %b %Y", then)


def hit(text: str, answers: tuple[str, ...]) -> bool:
    return all(a.lower() in text.lower() for a in answers)


def ask_all(companion, settings, home: Path, said_at, now: float) -> tuple[list[dict[str, Any]], list[float]]:
    """Every question through the companion's context builder, and the baseline."""
    conversation = companion.conversation(settings, keep=False)
    index = companion.vectors(settings)
    if index is not None:  # read in the background as the companion opens (~0.3 s at 50,000 lines),
        index.refresh()  # done by the time a call's greeting has played: not a question's cost
    rows, build_ms = [], []
    for q in QUESTIONS:
        answers = (day(said_at[q.said[0]], now),) if q.kind == "when" else q.answers
        t = time.perf_counter()
        recalled = conversation.prompt_for(q.question)[-1].context
        build_ms.append((time.perf_counter() - t) * 1000)
        baseline = bm25_top10(home / "memory.db", q.question, now)
        rows.append(
            {
                "kind": q.kind,
                "question": q.question,
                "answers": answers,
                "hit": hit(recalled, answers),
                "baseline_hit": hit(baseline, answers),
                "recall": recalled,
                "build_ms": round(build_ms[-1], 1),
            }
        )
    conversation.close()
    return rows, build_ms


class VectorCache:
    """Sentence vectors by text: the history repeats its filler lines, and each format
    imports the same lines, so each distinct line is embedded once for the whole run.
    The embedding speed is measured on its own (`measure`)."""

    def __init__(self) -> None:
        from voice_companion.engines import embeddings

        self.embedder = embeddings.shared()
        self.by_text: dict[str, Any] = {}

    def measure(self, store: SQLiteMemoryStore, seconds: float) -> float:
        """Lines a second that `history import` embeds, over `seconds` of real work."""
        from voice_companion.companion.memory.vectors import embed_pending

        started = time.perf_counter()
        done = embed_pending(store, self.embedder, stop=lambda: time.perf_counter() - started > seconds)
        return done / (time.perf_counter() - started)

    def fill(self, store: SQLiteMemoryStore) -> None:
        """Every user turn without a vector gets the one its text has (embedded if new)."""
        while turns := store.unembedded_turns(5000):
            new = list(dict.fromkeys(t.text for t in turns if t.text not in self.by_text))
            for text, vector in zip(new, self.embedder.passages(new), strict=True):
                self.by_text[text] = vector.astype("float16")
            store.add_vectors([(t.id, has_cjk(t.text), self.by_text[t.text].tobytes()) for t in turns])


def run_format(
    fmt: str, sessions, said_at, folder: Path, vectors: VectorCache | None, database: str = ""
) -> dict[str, Any]:
    """Import the history in one format, then ask every question of it: by words only,
    then (with the embedder) by words and meaning. With `database` (a PostgreSQL URL) the
    companion's memory is there; the BM25 baseline still reads an SQLite copy."""
    from voice_companion.companion.companion import Companion
    from voice_companion.companion.persona import Persona
    from voice_companion.core.config import Settings

    home = folder / fmt
    home.mkdir()
    export = write_export(fmt, sessions, home)
    store: Any = SQLiteMemoryStore(home / "memory.db")
    if database:
        importer.import_history(store, export, fmt)  # for the baseline only
        store.close()
        from voice_companion.companion.memory.postgres_store import PostgresMemoryStore

        store = PostgresMemoryStore(database, f"bench_recall_{fmt}")
        store.forget_all()
    started = time.perf_counter()
    report = importer.import_history(store, export, fmt)
    stored_s = time.perf_counter() - started
    importer.learn(store)
    learned_s = time.perf_counter() - started - stored_s
    settings = Settings()
    settings.llm.tier = "small"
    settings.memory.recall_by_meaning = False
    now = time.time()
    persona = Persona("Mia", language="en")
    rows, build_ms = ask_all(Companion("bench", persona, home, store), settings, home, said_at, now)
    result: dict[str, Any] = {
        "format": fmt,
        "store": "postgresql" if database else "sqlite",
        "turns": report.turns,
        "sessions": report.sessions,
        "import_turns_per_s": round(report.turns / stored_s),
        "export_mb": round(export.stat().st_size / 1e6, 1),
        "learn_s": round(learned_s, 1),
        "hit_rate": round(sum(r["hit"] for r in rows) / len(rows), 3),
        "baseline_hit_rate": round(sum(r["baseline_hit"] for r in rows) / len(rows), 3),
        "prompt_build_ms": summary(build_ms),
        "rows": rows,
    }
    if vectors is not None and vectors.embedder is not None:
        if not vectors.by_text:
            result["embed_lines_per_s"] = round(vectors.measure(store, 20.0), 1)
        vectors.fill(store)
        settings.memory.recall_by_meaning = True
        rows, build_ms = ask_all(Companion("bench", persona, home, store), settings, home, said_at, now)
        result["meaning"] = {
            "hit_rate": round(sum(r["hit"] for r in rows) / len(rows), 3),
            "prompt_build_ms": summary(build_ms),
            "rows": rows,
        }
    store.close()
    return result


FORMATS = ("jsonl", "chatgpt", "claude", "sillytavern", "characterai")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=100_000, help="turns of imported history")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, from: " + ", ".join(FORMATS))
    parser.add_argument("--words-only", action="store_true", help="no recall by meaning (no embedder needed)")
    parser.add_argument(
        "--database", default="", metavar="URL", help="the companion's memory in this PostgreSQL database (a test one)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    if unknown := set(formats) - set(FORMATS):
        parser.error(f"unknown format(s): {', '.join(sorted(unknown))}")
    sessions, said_at = history(args.turns)
    vectors = None if args.words_only else VectorCache()
    with tempfile.TemporaryDirectory() as folder:
        results = [run_format(fmt, sessions, said_at, Path(folder), vectors, args.database) for fmt in formats]
    result = {"machine": machine(), "questions": len(QUESTIONS), "formats": results}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"machine: {result['machine']}")
    for r in results:
        b = r["prompt_build_ms"]
        print(
            f"{r['format']}: {r['turns']} turns in {r['sessions']} sessions ({r['export_mb']} MB),"
            f" {r['import_turns_per_s']} turns/s; prompt build p50 {b['p50']:.1f} / p95 {b['p95']:.1f} ms"
        )
        meaning = r.get("meaning")
        if meaning:
            m = meaning["prompt_build_ms"]
            speed = f", embedding {r['embed_lines_per_s']} lines/s" if "embed_lines_per_s" in r else ""
            print(f"    with meaning: prompt build p50 {m['p50']:.1f} / p95 {m['p95']:.1f} ms{speed}")
        print("    kind      words  +meaning  BM25 top-10")
        for kind in [*dict.fromkeys(x["kind"] for x in r["rows"]), "all"]:
            of_kind = [i for i, x in enumerate(r["rows"]) if kind in ("all", x["kind"])]
            words = sum(r["rows"][i]["hit"] for i in of_kind)
            base = sum(r["rows"][i]["baseline_hit"] for i in of_kind)
            both = sum(meaning["rows"][i]["hit"] for i in of_kind) if meaning else "-"
            print(f"    {kind:9} {words:>3}/{len(of_kind):<3} {both:>3}/{len(of_kind):<3}   {base:>3}/{len(of_kind)}")
    first = results[0]
    for i, x in enumerate(first["rows"]):
        both = first["meaning"]["rows"][i]["hit"] if "meaning" in first else False
        marks = (
            f"{'hit ' if x['hit'] else 'MISS'} {'hit ' if both else 'MISS'} {'base' if x['baseline_hit'] else '    '}"
        )
        print(f"  {marks} {x['kind']:8} {x['question']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
