#!/usr/bin/env python3
"""Memory recall and prompt-build time for long histories (no LLM: the store and the prompt).

    python scripts/bench_memory.py [--sizes 1000,10000,100000] [--json]

For each size, a synthetic companion history of that many exchanges (user turn + reply,
English and Chinese small talk, a few distracting likes and favourites) is written to a
real SQLite store in a temp dir, with facts learned by the same patterns as a live call.
Planted among it: casual facts, half that the patterns catch and half that only search
of old turns can find. For each fact's question it measures:
- recall@k: the answer is among the top k items the retriever returns (k = 1, 3, 6);
- prompt recall: the answer is anywhere in the prompt the LLM would receive;
- the prompt build time (`prompt_for`: profile, window, FTS5 search), p50/p95/max;
- the session open time (profile, carry-over of recent turns).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_companion.companion.memory import facts  # noqa: E402
from voice_companion.companion.memory.context import Budget  # noqa: E402
from voice_companion.companion.memory.conversation import MemoryConversation  # noqa: E402
from voice_companion.companion.memory.retrieval import Retriever  # noqa: E402
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore  # noqa: E402
from voice_companion.companion.memory.summaries import summarize_session  # noqa: E402
from voice_companion.companion.memory.types import Turn  # noqa: E402
from voice_companion.core.prompts import PERSONA  # noqa: E402

# (said in passing, asked later, the answer); the first 15 are caught by the patterns
PLANTED = [
    ("Oh by the way, my name is Sam.", "What is my name?", "Sam"),
    ("I live in Leeds, it rains a lot here.", "Where do I live?", "Leeds"),
    ("My cat is called Mochi and she sleeps all day.", "What is my cat called?", "Mochi"),
    ("My sister Anna is visiting next month.", "What is my sister's name?", "Anna"),
    ("I'm allergic to peanuts, annoyingly.", "What am I allergic to?", "peanuts"),
    ("I work as a nurse at St James hospital.", "Where do I work?", "nurse"),
    ("My favourite colour is teal.", "What is my favourite colour?", "teal"),
    ("I'm learning the ukulele these days.", "What am I learning?", "ukulele"),
    ("My birthday is on March 14.", "When is my birthday?", "March 14"),
    ("我养了一只狗叫旺财。", "我的狗叫什么名字？", "旺财"),
    ("我是成都人，很喜欢吃辣。", "我是哪里人？", "成都"),
    ("我的妹妹叫小红。", "我妹妹叫什么？", "小红"),
    ("我最喜欢的水果是榴莲。", "我最喜欢的水果是什么？", "榴莲"),
    ("我在学日语，每天半小时。", "我在学什么？", "日语"),
    ("Je suis allergique aux kiwis.", "Je suis allergique à quoi ?", "kiwis"),
    ("We're going to Lisbon for our anniversary in June.", "Where are we going for our anniversary?", "Lisbon"),
    ("I finally bought a green bicycle last weekend.", "What colour is the bicycle I bought?", "green"),
    ("Work has been crazy because of the Henderson project.", "Which project made work crazy?", "Henderson"),
    ("I had pancakes with blueberries for breakfast.", "What did I have on my pancakes?", "blueberries"),
    ("My grandfather fixed old radios in his garage.", "What did my grandfather fix?", "radios"),
    ("The wifi password at home is sunflower42.", "What is the wifi password at home?", "sunflower42"),
    ("I parked the car on level 3 of the station garage.", "Where did I park the car?", "level 3"),
    ("下周三我要去医院看牙医。", "我什么时候去看牙医？", "下周三"),
    ("我周末常常去西湖边跑步。", "我周末常去哪里跑步？", "西湖"),
    ("我刚买了一辆红色的电动车。", "我买的电动车是什么颜色？", "红色"),
    ("我爷爷以前是火车司机。", "我爷爷以前做什么工作？", "火车司机"),
    ("我把护照放在书架最上面了。", "我把护照放在哪里了？", "书架"),
    ("Mon voisin Paul joue du saxophone le soir.", "De quel instrument joue mon voisin ?", "saxophone"),
]
WHEN = ["This morning", "Today", "Yesterday", "Tonight", "After lunch", "On the way home", "Earlier"]
VERB = [
    "cleaned",
    "fixed",
    "painted",
    "moved",
    "sorted",
    "watched",
    "cooked",
    "read",
    "bought",
    "found",
    "lost",
    "tidied",
    "washed",
    "checked",
    "planned",
    "visited",
    "ordered",
    "wrote",
    "measured",
    "tried",
]
THING = [
    "the kitchen",
    "an old chair",
    "the shelves",
    "a documentary",
    "some soup",
    "a mystery novel",
    "new socks",
    "the garden hose",
    "a puzzle",
    "the laundry",
    "a letter",
    "the fridge",
    "a recipe",
    "the balcony",
    "my desk",
    "a podcast",
    "the curtains",
    "a map",
    "some photos",
    "the plants",
]
FEEL = ["I feel tired", "it was fun", "it took ages", "not bad at all", "I'm proud of it", "meh"]
ZH_WHEN = ["今天", "昨天", "早上", "晚上", "中午"]
ZH_DID = ["打扫了房间", "去超市买了菜", "看了一部电影", "加班到很晚", "洗了衣服", "做了饭", "整理了照片", "散了步"]
ZH_FEEL = ["有点累", "挺开心的", "很放松", "一般般", "好困"]
DISTRACT = ["I like {t}.", "My favourite {k} is {t}.", "我喜欢{z}。"]


def small_talk(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.2:
        return f"{rng.choice(ZH_WHEN)}{rng.choice(ZH_DID)}，{rng.choice(ZH_FEEL)}。"
    if roll < 0.25:  # likes and favourites: facts that compete for the profile
        return rng.choice(DISTRACT).format(
            t=rng.choice(THING).replace("the ", ""), k=rng.choice(["song", "snack", "film"]), z=rng.choice(ZH_DID)
        )
    return f"{rng.choice(WHEN)} I {rng.choice(VERB)} {rng.choice(THING)}, {rng.choice(FEEL)}."


def build(store: SQLiteMemoryStore, exchanges: int, rng: random.Random, per_session: int = 50) -> None:
    """The history as a live call would have left it, written in one transaction."""
    start = time.time() - 400 * 86400
    step = 400 * 86400 / exchanges
    slots = set(rng.sample(range(exchanges - 60), len(PLANTED)))  # not in the resumed window
    planted = iter(PLANTED)
    sessions, turns = [], []
    memories: dict[object, dict] = {}
    for i in range(exchanges):
        sid = i // per_session + 1
        now = start + i * step
        if i % per_session == 0:
            sessions.append(
                {"id": sid, "started": now, "ended": now + per_session * step, "summary": "", "backend": ""}
            )
        said = next(planted)[0] if i in slots else small_talk(rng)
        turns += [
            {"id": 2 * i + 1, "session_id": sid, "role": "user", "text": said, "time": now, "interrupted": 0},
            {
                "id": 2 * i + 2,
                "session_id": sid,
                "role": "assistant",
                "text": "Mm, tell me more.",
                "time": now + 1,
                "interrupted": 0,
            },
        ]
        for fact in facts.extract(said):  # a keyed fact replaces the older one, as in the store
            memories[fact.key or len(memories)] = {
                "id": len(memories) + 1,
                "kind": "fact",
                "text": fact.text,
                "importance": fact.importance,
                "confidence": fact.confidence,
                "source_turn": 2 * i + 1,
                "time": now,
                "key": fact.key,
            }
    for session in sessions[-6:]:  # the summaries a new session shows
        mine = [Turn(**{**t, "interrupted": False}) for t in turns if t["session_id"] == session["id"]]
        session["summary"] = summarize_session(mine)
    for n, memory in enumerate(sorted(memories.values(), key=lambda m: m["time"]), 1):
        memory["id"] = n
    store.import_rows({"sessions": sessions, "turns": turns, "memories": list(memories.values())})


def measure(exchanges: int, seed: int) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteMemoryStore(Path(tmp) / "memory.db")
        t0 = time.perf_counter()
        build(store, exchanges, rng)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        conversation = MemoryConversation(store, PERSONA.replace("{name}", "Mia"), Budget.for_context(4096, 80))
        open_ms = (time.perf_counter() - t0) * 1000
        retriever = Retriever(store)
        at_k = {1: 0, 3: 0, 6: 0}
        in_prompt, build_ms, missed = 0, [], []
        for _, question, answer in PLANTED:
            found = [r.text.lower() for r in retriever.recall(question, 6)]
            for k in at_k:
                at_k[k] += any(answer.lower() in text for text in found[:k])
            if not any(answer.lower() in text for text in found):
                missed.append(question)
            t0 = time.perf_counter()
            prompt = conversation.prompt_for(question)
            build_ms.append((time.perf_counter() - t0) * 1000)
            whole = "\n".join(m.content for m in prompt)
            in_prompt += answer.lower() in whole.lower()
        conversation.worker.finish(conversation.session_id)
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        n_memories = len(store.memories())
        store.close()
    n = len(PLANTED)
    build_ms.sort()
    return {
        "exchanges": exchanges,
        "stored_turns": 2 * exchanges,
        "memories": n_memories,
        "facts_planted": n,
        "recall_at_k": {str(k): round(v / n, 3) for k, v in at_k.items()},
        "prompt_recall": round(in_prompt / n, 3),
        "prompt_build_ms": {
            "p50": round(statistics.median(build_ms), 2),
            "p95": round(build_ms[int(0.95 * (n - 1))], 2),
            "max": round(build_ms[-1], 2),
        },
        "not_in_top_6": missed,
        "open_ms": round(open_ms, 1),
        "write_s": round(build_s, 1),
        "db_mb": round(size_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="history sizes in exchanges")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    results = [measure(int(size), args.seed) for size in args.sizes.split(",")]
    report = {"machine": f"{platform.machine()}, {platform.python_version()}", "results": results}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return
    print(
        f"{'exchanges':>9} {'memories':>8} {'r@1':>5} {'r@3':>5} {'r@6':>5} {'in prompt':>9} "
        f"{'build p50/p95/max ms':>22} {'open ms':>8} {'db MB':>6}"
    )
    for r in results:
        ms = r["prompt_build_ms"]
        print(
            f"{r['exchanges']:>9} {r['memories']:>8} {r['recall_at_k']['1']:>5} {r['recall_at_k']['3']:>5} "
            f"{r['recall_at_k']['6']:>5} {r['prompt_recall']:>9} {ms['p50']:>7}/{ms['p95']}/{ms['max']:<8} "
            f"{r['open_ms']:>8} {r['db_mb']:>6}"
        )


if __name__ == "__main__":
    main()
