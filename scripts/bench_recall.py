#!/usr/bin/env python3
"""Recall over a long imported history (issue 19): does what the user said once, months
ago, come back when they ask? Against a plain BM25 top-10 in the same run.

    python scripts/bench_recall.py [--turns 100000] [--json]

A synthetic history is written as a JSONL export (English and Chinese, everyday filler
of 8-30 words a line, sessions spread over the last ~400 days) with facts mentioned once
in passing; it is imported with `history import`'s importer, then every question goes
through the companion's own context builder (what `memory recall` shows: the recall
that rides with the message, within the tier's recall budget). A hit: the planted
answer is in it. The baseline: SQLite FTS5's bm25 over all user turns (unicode61, the
question's words OR-ed), top 10. Also: import speed and the prompt build time (p50/p95).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

from voice_companion.companion.imports import importer  # noqa: E402
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore  # noqa: E402

FILLER_EN = [
    "I had a long day at work and the bus was late again",
    "we watched a film tonight and it was better than I expected",
    "the weather turned grey so I stayed in and read for a while",
    "I cooked pasta for dinner and burnt the garlic a little",
    "I went for a walk by the river and it was really calm",
    "my knee hurts a bit after climbing all those stairs",
    "I tidied the kitchen and finally fixed the dripping tap",
    "I tried a new coffee place near the station this morning",
]
FILLER_ZH = [
    "今天上班很累，回家的公交车又晚点了",
    "晚上我们看了一部电影，比我想的好看",
    "天气阴了，我就在家看了一会儿书",
    "我晚饭做了面条，蒜有点炒糊了",
]
REPLIES = ["That sounds like quite a day.", "Oh, tell me more!", "I'm glad you told me.", "听起来不错。"]
# (said once in passing, the question, the word that must come back)
FACTS = [
    ("by the way my sister Lea moved to Porto last spring", "Where does my sister live now?", "Porto"),
    ("my dentist is called Dr Okafor, very gentle", "What is my dentist called?", "Okafor"),
    ("I started learning the cello in the evenings", "Which instrument did I start learning?", "cello"),
    ("my neighbour's dog is a grey whippet named Biscuit", "What is my neighbour's dog called?", "Biscuit"),
    ("I'm allergic to kiwis, found out the hard way", "What fruit am I allergic to?", "kiwi"),
    ("my grandmother's recipe for plum cake uses cardamom", "What spice is in my grandmother's plum cake?", "cardamom"),
    ("我小时候住在桂林，山很美", "我小时候住在哪里？", "桂林"),
    ("我的好朋友小周在杭州开了一家茶馆", "小周在哪里开了茶馆？", "杭州"),
    ("I ran my first half marathon in Lisbon", "Where did I run my first half marathon?", "Lisbon"),
    ("my boss Ingrid is leaving the company in March", "Who is leaving the company?", "Ingrid"),
]


def history(path: Path, turns: int, seed: int = 7) -> None:
    """A JSONL export of `turns` lines over about a year, the facts spread through it."""
    rng = random.Random(seed)
    start = time.time() - 400 * 86400
    day_step = 400 * 86400 / max(1, turns // 60) / 1.33  # the sessions spread over ~400 days, up to today
    spots = sorted(rng.sample(range(100, turns // 2 - 100), len(FACTS)))
    when = start
    with open(path, "w", encoding="utf-8") as f:
        for n in range(turns // 2):
            if n % 30 == 0:
                when += rng.choice((1, 1, 2)) * day_step  # a new session every day or two (at 100k turns: hours)
            when += rng.uniform(20, 90)
            said = (rng.choice(FILLER_ZH) if rng.random() < 0.25 else rng.choice(FILLER_EN)) + "."
            if spots and n == spots[0]:
                spots.pop(0)
                said = FACTS[len(FACTS) - len(spots) - 1][0] + "."
            f.write(json.dumps({"role": "user", "content": said, "time": when}, ensure_ascii=False) + "\n")
            f.write(json.dumps({"role": "assistant", "content": rng.choice(REPLIES), "time": when + 5}) + "\n")


def bm25_top10(db_path: Path, question: str) -> str:
    """The baseline: FTS5 bm25 over the user's words (unicode61), top 10, joined."""
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
            "SELECT text FROM plain WHERE plain MATCH ? ORDER BY bm25(plain) LIMIT 10", (query,)
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=100_000, help="turns of imported history")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from voice_companion.companion.companion import Companion
    from voice_companion.companion.persona import Persona
    from voice_companion.core.config import Settings

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        export = home / "history.jsonl"
        history(export, args.turns)
        store = SQLiteMemoryStore(home / "memory.db")
        started = time.perf_counter()
        report = importer.import_history(store, export, "jsonl")
        stored_s = time.perf_counter() - started
        importer.learn(store)
        learned_s = time.perf_counter() - started - stored_s
        settings = Settings()
        settings.llm.tier = "small"
        companion = Companion("bench", Persona("Mia", language="en"), home, store)
        conversation = companion.conversation(settings, keep=False)
        rows, build_ms = [], []
        for _, question, answer in FACTS:
            t = time.perf_counter()
            recalled = conversation.prompt_for(question)[-1].context
            build_ms.append((time.perf_counter() - t) * 1000)
            baseline = bm25_top10(home / "memory.db", question)
            rows.append(
                {
                    "question": question,
                    "answer": answer,
                    "hit": answer.lower() in recalled.lower(),
                    "baseline_hit": answer.lower() in baseline.lower(),
                    "recall": recalled,
                }
            )
        conversation.close()
        store.close()
    hits = sum(r["hit"] for r in rows)
    base = sum(r["baseline_hit"] for r in rows)
    result = {
        "machine": machine(),
        "turns": report.turns,
        "sessions": report.sessions,
        "import_turns_per_s": round(report.turns / stored_s),
        "learn_s": round(learned_s, 1),
        "hit_rate": round(hits / len(rows), 3),
        "baseline_hit_rate": round(base / len(rows), 3),
        "prompt_build_ms": summary(build_ms),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"machine: {result['machine']}")
    print(f"imported {report.turns} turns in {report.sessions} sessions: {result['import_turns_per_s']} turns/s")
    print(f"recall hits {hits}/{len(rows)} (BM25 top-10 baseline {base}/{len(rows)})")
    b = result["prompt_build_ms"]
    print(f"prompt build p50 {b['p50']:.1f} / p95 {b['p95']:.1f} ms")
    for r in rows:
        print(f"  {'hit ' if r['hit'] else 'MISS'} {'base' if r['baseline_hit'] else '    '} {r['question']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
