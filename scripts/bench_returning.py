#!/usr/bin/env python3
"""A returning user, measured: first turns of new sessions and a long spoken call on a
companion that already knows them well, with the warm start on and off in one run.

    python scripts/bench_returning.py [--llm small] [--runs 3] [--turns 40] [--imported TURNS] [--json]

The companion is built as a long-time user leaves it: 540 stored exchanges over 12
sessions (English and Chinese, 15-30 words a line), 52 learned facts, a summary per
session; then one short typed session ends, as the last one did. Each situation runs
on fresh processes, as a user starts them:
- `reply`: `voice-companion reply --input question.wav` (one process per question);
- `chat`: one typed question piped into `voice-companion chat --json`;
- `phone`: a fresh `voice-companion serve`, one call (`voice_companion.transports.websocket.client`);
- `call40`: one phone call of 40 spoken turns at real-time pace, with facts being
  told, recall questions, and window rolls (the window fills several times).
Every answer to a recall question is checked for the planted word. The same companion
is measured twice, from the same copy: with `llm.warm_start = true` (saved prefix
states, rolls prepared in the background) and `false` (the baseline: the prompt is
prefilled cold when a session opens, rolls happen on the critical path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

from voice_companion.core.audio import STT_RATE, load_for_stt, to_int16, write_wav  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.engines.loader import voice_path  # noqa: E402
from voice_companion.engines.tts import PiperTTS, VoiceSettings  # noqa: E402
from voice_companion.transports.websocket.client import BLOCK, RealtimeClient  # noqa: E402

CLI = [sys.executable, "-m", "voice_companion"]

# (said in passing, the fact learned, a question, the word that must come back)
FACTS = [
    (
        "my cat is called Mochi and she sleeps on my keyboard all afternoon",
        "The user's cat is called Mochi",
        "What is my cat called?",
        "Mochi",
    ),
    (
        "my sister Lea is visiting on Saturday, she is bringing her two kids",
        "The user's sister Lea visits on Saturday",
        "Who is visiting me on Saturday?",
        "Lea",
    ),
    (
        "I work as a nurse at the children's hospital, mostly night shifts",
        "The user works as a nurse",
        "What is my job?",
        "nurse",
    ),
    ("I live in Leeds, in a small flat near the river", "The user lives in Leeds", "Which city do I live in?", "Leeds"),
    (
        "my best friend Anselm visits on Fridays and we cook together",
        "The user's best friend Anselm visits on Fridays",
        "Who visits me on Fridays?",
        "Anselm",
    ),
    (
        "I am allergic to peanuts, so I always check the labels",
        "The user is allergic to peanuts",
        "What am I allergic to?",
        "peanut",
    ),
    (
        "my favourite colour is teal, my whole kitchen is teal",
        "The user's favourite colour is teal",
        "What is my favourite colour?",
        "teal",
    ),
    (
        "I am learning the ukulele, twenty minutes every evening",
        "The user is learning the ukulele",
        "Which instrument am I learning?",
        "ukulele",
    ),
    (
        "my dog is called Biscuit, he is a very old beagle",
        "The user's dog is called Biscuit",
        "What is my dog's name?",
        "Biscuit",
    ),
    (
        "my mum lives in Dublin and I call her every Sunday",
        "The user's mother lives in Dublin",
        "Where does my mum live?",
        "Dublin",
    ),
]
MORE_FACTS = [
    f"The user {what}"
    for what in (
        "likes rainy mornings",
        "drinks green tea",
        "hates loud music",
        "grew up by the sea",
        "has a blue bicycle",
        "reads crime novels",
        "runs on Tuesdays",
        "plays chess online",
        "is saving for a trip to Japan",
        "bakes sourdough bread",
        "keeps a small balcony garden",
        "watches old films",
        "knits scarves in winter",
        "takes the 7:40 train",
        "wants to learn to swim",
        "collects postcards",
        "is afraid of spiders",
        "loves lemon cake",
        "volunteers at the library",
        "was born in March",
        "sings in a choir",
        "walks to work",
        "likes jigsaw puzzles",
        "paints watercolours",
        "has a cousin named Tom",
        "studies Spanish",
        "prefers the night",
        "dislikes coriander",
        "keeps a diary",
        "had a fall last winter",
        "owns a red raincoat",
        "listens to jazz",
        "is a morning person on weekends",
        "misses their grandmother",
        "makes soup on Sundays",
        "writes short poems",
        "fixes old radios",
        "goes hiking in the Dales",
        "likes the smell of coffee",
        "once lived in Lyon",
        "has a fear of flying",
        "grows tomatoes",
    )
]
FILLER_EN = [
    "today was long, the bus was late again and I had to stand all the way into town",
    "I made pasta for dinner and watched half a film before I fell asleep on the sofa",
    "work was quiet this morning but the afternoon was a mess with three new admissions",
    "I went for a walk by the river and it was colder than I expected for this time of year",
    "I tried to tidy the flat but mostly I moved piles of paper from one table to another",
    "I finished the book I was reading and now I do not know what to start next",
    "the neighbours had a party until late and I barely slept at all last night",
    "I feel a bit lonely this evening, everyone seems busy with their own lives",
]
FILLER_ZH = [
    "今天下班的时候下了大雨，我没带伞，全身都湿透了，回家洗了个热水澡才好一点。",
    "最近工作压力有点大，老板总是临时加任务，我晚上经常睡不好觉。",
    "周末我去超市买了很多菜，打算这周每天自己做饭，少吃外卖。",
    "我今天和朋友视频聊了很久，说起小时候的事情，觉得特别开心。",
]
# Replies vary as a real companion's do (a history of four replies repeated 500 times
# taught the tiny model to repeat them): opener x follow-up, per language.
OPENERS = [
    "That sounds like a lot.",
    "Oh, I am glad you told me.",
    "Mm, I can picture it.",
    "That is a long day.",
    "I am sorry it was so hard.",
    "Oh, that is lovely.",
    "Ha, I know that feeling.",
    "You did well to get through it.",
]
FOLLOW_UPS = [
    "How are you feeling now?",
    "What was the best part?",
    "Do you want to tell me more?",
    "Did you get any rest?",
    "What would cheer you up tonight?",
    "Was anyone with you?",
    "What will you do tomorrow?",
    "Shall we just chat for a bit?",
    "What surprised you most?",
]
ZH_REPLIES = [
    "听起来真不容易，辛苦你了。现在感觉好些了吗？",
    "谢谢你跟我说这些。你今晚想怎么放松一下？",
    "哈哈，我能想象那个画面。后来怎么样了？",
    "抱抱你。要不要跟我多说一点？",
]


def reply_for(n: int) -> str:
    if n % 4 == 3:
        return ZH_REPLIES[(n // 4) % len(ZH_REPLIES)]
    return f"{OPENERS[n % len(OPENERS)]} {FOLLOW_UPS[(n // 3) % len(FOLLOW_UPS)]}"


SESSIONS, PER_SESSION = 12, 45
# The 40-turn call: small talk, facts told during the call, and recall questions.
CALL_NEW = [
    ("My new neighbour is called Priya and she has a parrot.", "What is my new neighbour called?", "Priya"),
    ("I booked a dentist appointment for next Thursday morning.", "When is my dentist appointment?", "Thursday"),
]
CALL_TALK = [
    "I had a quiet morning and made pancakes with blueberries for breakfast.",
    "The weather turned grey after lunch so I stayed in and read for a while.",
    "I am a bit tired today because the night shift was really busy.",
    "I think I will call my mum this evening, it has been a few days.",
    "Work was hectic again, two colleagues were off sick this week.",
    "I went to the market and bought some flowers for the kitchen table.",
    "My knee hurts a little after the long walk yesterday afternoon.",
    "I watched an old film last night and it made me cry a bit.",
]


def tts() -> PiperTTS:
    return PiperTTS(voice_path(Settings()), VoiceSettings(noise_scale=0.0, noise_w=0.0))


def spoken(voice: PiperTTS, text: str, folder: Path, cache: dict[str, Path]) -> Path:
    if text not in cache:
        cache[text] = write_wav(folder / f"q{len(cache)}.wav", voice.synthesize_all(text), voice.sample_rate)
    return cache[text]


# -- the companion a long-time user leaves ------------------------------------------


def build_companion(home: Path, tier: str) -> dict:
    os.environ["VOICE_COMPANION_HOME"] = str(home)
    from voice_companion.companion.companion import open_companion
    from voice_companion.companion.memory.summaries import summarize_session
    from voice_companion.companion.memory.vectors import embed_pending
    from voice_companion.core.config import load_settings
    from voice_companion.engines import embeddings

    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(f'[llm]\ntier = "{tier}"\n')
    settings = load_settings()
    companion = open_companion(settings)
    store = companion.store
    facts = list(FACTS)
    extra = iter(MORE_FACTS)
    exchanges = 0
    for s in range(SESSIONS):
        sid = store.start_session("embedded")
        for i in range(PER_SESSION):
            n = s * PER_SESSION + i
            said = (
                facts.pop(0)[0]
                if facts and i == 5 + s
                else (FILLER_ZH[n % len(FILLER_ZH)] if n % 4 == 3 else f"Hi Mia, {FILLER_EN[n % len(FILLER_EN)]}.")
            )
            turn = store.add_turn(sid, "user", said[0].upper() + said[1:] if not said.startswith("Hi") else said)
            store.add_turn(sid, "assistant", reply_for(n))
            exchanges += 1
            if i % 11 == 10:
                fact = next(extra, None)
                if fact:
                    store.add_memory("fact", fact, 0.5, 0.9, turn.id)
        store.end_session(sid, summarize_session(store.turns(sid, limit=2000)))
    for _said, fact, _, _ in FACTS:
        store.add_memory("fact", fact, 0.8, 1.0)
    learned = len(store.memories(("fact",)))
    embedder = embeddings.shared()
    if embedder is not None:  # a companion that lived these turns gave each its vector (memory worker)
        embed_pending(store, embedder)
    companion.close()
    return {"exchanges": exchanges, "sessions": SESSIONS, "facts": learned}


# Asked first with --imported: said once, only in the imported history (bench_recall's mentions;
# not the ones the lived history also has an answer for: the job, the instrument)
IMPORTED_QUESTIONS = [
    ("Where did I run my first half marathon?", "Lisbon"),
    ("What spice is in my grandmother's plum cake?", "cardamom"),
]


def import_history(home: Path, turns: int) -> dict:
    """What `voice-companion history import` leaves: `turns` lines of bench_recall's
    synthetic year (its mentions said once among them) imported through the command,
    then the sentence vectors a finished import has (each distinct line embedded once,
    as bench_recall does: the command's own loop would take ~20 min at 50,000 lines)."""
    import bench_recall

    from voice_companion.companion.library import MEMORY_FILE, Library
    from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore
    from voice_companion.core.config import load_settings

    sessions, _ = bench_recall.history(turns)
    export = bench_recall.write_export("jsonl", sessions, home.parent)
    out, _ = run_cli(home, ["history", "import", str(export), "--format", "jsonl", "--no-vectors", "--json"])
    report = json.loads(out)
    export.unlink()
    os.environ["VOICE_COMPANION_HOME"] = str(home)
    store = SQLiteMemoryStore(Library(load_settings().paths.data_dir).directory(report["companion"]) / MEMORY_FILE)
    vectors = bench_recall.VectorCache()
    if vectors.embedder is not None:
        vectors.fill(store)
    store.close()
    return {"imported_turns": report["turns"], "imported_sessions": report["sessions"]}


EXTRA_SETTINGS: dict[str, dict[str, str]] = {}  # --set SECTION.KEY=VALUE (TOML values)


def set_warm(home: Path, tier: str, warm: bool) -> None:
    sections = {"llm": {"tier": f'"{tier}"', "warm_start": "true" if warm else "false"}}
    for section, values in EXTRA_SETTINGS.items():
        sections.setdefault(section, {}).update(values)
    text = "".join(
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) for section, values in sections.items()
    )
    (home / "config" / "config.toml").write_text(text)


def env_for(home: Path) -> dict:
    return {**os.environ, "VOICE_COMPANION_HOME": str(home)}


def run_cli(home: Path, args: list[str], stdin: str = "", timeout: float = 600) -> tuple[str, str]:
    done = subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env_for(home), cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stdout, done.stderr


# -- situations -----------------------------------------------------------------------


def measure_reply(home: Path, questions: list[tuple[Path, str, str]]) -> list[dict]:
    rows = []
    for wav, text, expected in questions:
        out, err = run_cli(
            home, ["reply", "--input", str(wav), "--output", str(wav.with_suffix(".answer.wav")), "--json"]
        )
        d = json.loads(out.strip().splitlines()[-1])
        t = d["timings_ms"]
        rows.append(
            {
                "question": text,
                "reply": d["reply"],
                "correct": expected.lower() in d["reply"].lower(),
                "v2v_ms": t["voice_to_voice"],
                "first_token_ms": t["llm_first_token"],
                "prompt_ready_ms": t["prompt_ready"],
                "warm_start": d["warm_start"],
                "prefill_tokens": d["prefill_tokens"],
            }
        )
    return rows


def measure_chat(home: Path, questions: list[tuple[Path, str, str]]) -> list[dict]:
    rows = []
    for n, (_, text, expected) in enumerate(questions):
        out, err = run_cli(home, ["-v", "chat", "--json"], stdin=text + "\n")
        (home / f"chat-{n}.log").write_text(err, encoding="utf-8")  # what it said, for a look later
        d = json.loads(out.strip().splitlines()[-1])
        t = d["timings_ms"]
        rows.append(
            {
                "question": text,
                "reply": d["reply"],
                "correct": expected.lower() in d["reply"].lower(),
                "first_token_ms": t["llm_first_token"],
                "prompt_ready_ms": t.get("prompt_ready"),
                "prefill_tokens": d["prefill_tokens"],
                "first_turn_ms": (t.get("prompt_ready") or 0) + (t["llm_first_token"] or 0),
            }
        )
    return rows


class Server:
    """A fresh `voice-companion serve` on a free loopback port."""

    def __init__(self, home: Path) -> None:
        self.process = subprocess.Popen(
            [*CLI, "-v", "serve", "--port", "0", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(home),
            cwd=ROOT,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("serve did not start: " + self.process.stderr.read()[-800:])
        info = json.loads(line)
        self.url, self.token = info["url"], info["token"]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


async def converse(url: str, token: str, turns: list[tuple[Path, str, str]], gap_s: float = 0.8) -> list[dict]:
    """One call: each utterance at real-time pace, then silence until its reply has played."""
    rows: list[dict] = []
    async with await RealtimeClient.connect(url, token) as client:
        for wav, text, expected in turns:
            pcm = to_int16(load_for_stt(wav))
            pcm = np.concatenate([pcm, np.zeros(int(gap_s * STT_RATE), dtype=np.int16)])
            rows.append(await _one_turn(client, pcm, text, expected))
    return rows


async def _one_turn(client: RealtimeClient, pcm: np.ndarray, text: str, expected: str) -> dict:
    row: dict = {"question": text, "expected": expected}
    sent_end: list[float] = []
    first_audio: list[float] = []
    done = asyncio.Event()

    async def talk() -> None:
        start = time.perf_counter()
        silence = np.zeros(BLOCK, dtype=np.int16)
        i = 0
        while not done.is_set():
            await asyncio.sleep(max(0.0, start + (i + 1) * BLOCK / STT_RATE - time.perf_counter()))
            block = pcm[i * BLOCK : (i + 1) * BLOCK]
            await client.send_audio(block if len(block) else silence)
            if not sent_end and (i + 1) * BLOCK >= len(pcm) - int(0.8 * STT_RATE):
                sent_end.append(time.perf_counter())
            i += 1

    talker = asyncio.create_task(talk())
    response_id = None
    try:
        while True:
            event = await asyncio.wait_for(client.recv(), 180)
            if not isinstance(event, dict):
                if response_id is not None and not first_audio:
                    first_audio.append(time.perf_counter())
                continue
            kind = event.get("type")
            if kind == "response.created" and response_id is None:
                response_id = event["response_id"]
            elif kind == "metrics.turn" and event.get("response_id") == response_id:
                row.update(
                    v2v_server_ms=event.get("voice_to_voice_ms"),
                    first_token_ms=event.get("llm_first_token_ms"),
                    prefill_tokens=event.get("prefill_tokens"),
                    cached_tokens=event.get("cached_tokens"),
                    # where the time went: the silence waited, STT, the first clause
                    endpoint_delay_ms=event.get("endpoint_delay_ms"),
                    stt_ms=event.get("stt_ms"),
                    first_clause_ms=event.get("first_clause_ms"),
                    speculative_hit=event.get("speculative_hit"),
                )
            elif kind == "response.done" and event.get("response_id") == response_id:
                row["reply"] = event.get("text", "")
                row["status"] = event.get("status")
                break
    finally:
        done.set()
        await asyncio.gather(talker, return_exceptions=True)
    if sent_end and first_audio:
        row["v2v_ms"] = round((first_audio[0] - sent_end[0]) * 1000, 1)
    row["correct"] = expected.lower() in row.get("reply", "").lower() if expected else None
    return row


def measure_phone(home: Path, questions: list[tuple[Path, str, str]]) -> list[dict]:
    rows = []
    for n, question in enumerate(questions):
        server = Server(home)
        try:
            rows += asyncio.run(converse(server.url, server.token, [question]))
        finally:
            (home / f"phone-{n}.log").write_text(server.stop(), encoding="utf-8")  # for a look later
    return rows


def call40_script(n: int) -> list[tuple[str, str]]:
    """(text, expected): talk, two facts told early, recall of old and new facts later."""
    old = [(q, e) for _, _, q, e in FACTS]
    script: list[tuple[str, str]] = []
    for i in range(n):
        if i in (2, 6):
            script.append((CALL_NEW[(i - 2) // 4][0], ""))
        elif i % 5 == 4:
            new_q = [(q, e) for _, q, e in CALL_NEW]
            pool = old + new_q if i > 10 else old
            script.append(pool[(i // 5) % len(pool)])
        else:
            script.append((CALL_TALK[i % len(CALL_TALK)], ""))
    return script


def measure_call40(home: Path, turns: list[tuple[Path, str, str]]) -> tuple[list[dict], int]:
    server = Server(home)
    try:
        rows = asyncio.run(converse(server.url, server.token, turns))
    finally:
        err = server.stop()
        (home / "serve.log").write_text(err, encoding="utf-8")  # what the server said, for a look later
    return rows, len(re.findall(r"prompt window rolled", err))


def chat40(home: Path, lines: list[str]) -> dict:
    start = time.perf_counter()
    out, _ = run_cli(home, ["chat", "--json"], stdin="\n".join(lines) + "\n", timeout=1800)
    total = time.perf_counter() - start
    answers = [json.loads(x) for x in out.strip().splitlines() if x.startswith("{")]
    replies = [a.get("reply", "") for a in answers]
    line_ms = [
        a["timings_ms"]["reply_total"] for a in answers if a.get("timings_ms", {}).get("reply_total") is not None
    ]
    prefill = [a["prefill_tokens"] for a in answers if a.get("prefill_tokens") is not None]
    firsts = [re.split(r"(?<=[.!?。！？])\s*", r.strip())[0].lower() for r in replies if r.strip()]
    repeated = sum(1 for i, f in enumerate(firsts) if f and f in firsts[:i])
    return {
        "lines": len(lines),
        "seconds_per_line": round(total / len(lines), 3),
        "wall_s": round(total, 1),
        "repeated_first_sentences": repeated,
        "distinct_replies": len(set(replies)),
        "line_ms": summary(line_ms) if line_ms else {},
        "prefill_tokens": summary(prefill) if prefill else {},
        "replies": replies,
    }


# -- the run --------------------------------------------------------------------------


def stats(rows: list[dict], key: str) -> dict:
    values = [r[key] for r in rows if r.get(key) is not None]
    return summary(values) if values else {}


def report(rows: list[dict]) -> dict:
    out = {
        "v2v_ms": stats(rows, "v2v_ms"),
        "first_token_ms": stats(rows, "first_token_ms"),
        "prefill_tokens": stats(rows, "prefill_tokens"),
        "correct": f"{sum(bool(r.get('correct')) for r in rows if r.get('correct') is not None)}/"
        f"{sum(r.get('correct') is not None for r in rows)}",
    }
    for key in ("prompt_ready_ms", "first_turn_ms", "v2v_server_ms", "endpoint_delay_ms", "stt_ms", "first_clause_ms"):
        if any(r.get(key) is not None for r in rows):
            out[key] = stats(rows, key)
    return out


def _progress(path: Path, result: dict, mode: str, modes: dict, name: str) -> None:
    result["modes"][mode] = modes
    path.write_text(json.dumps(result, ensure_ascii=False))
    brief = {k: v for k, v in modes[name].items() if k not in ("rows", "replies")}
    print(f"[{mode}] {name}: {json.dumps(brief, ensure_ascii=False)}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="small", help="tier: small (default) or tiny")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per first-turn situation")
    parser.add_argument("--turns", type=int, default=40, help="turns of the long spoken call")
    parser.add_argument("--chat-lines", type=int, default=40, help="piped chat lines (growing history)")
    parser.add_argument("--only", default="", help="comma list of situations: reply,chat,phone,call40,chat40")
    parser.add_argument("--modes", default="warm,cold", help="warm (warm start on), cold (off), or both")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", help="keep the companions' homes in this folder")
    parser.add_argument(
        "--imported",
        type=int,
        default=0,
        metavar="TURNS",
        help="also import this many turns of older history (history import), and ask about it first",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting for every situation, as in config.toml (e.g. turns.prefill_while_speaking_ms=0)",
    )
    args = parser.parse_args()
    for item in args.set:
        name, _, value = item.partition("=")
        section, _, key = name.partition(".")
        if not (section and key and value):
            parser.error(f"--set {item}: expected SECTION.KEY=VALUE")
        EXTRA_SETTINGS.setdefault(section, {})[key] = value
    only = set(filter(None, args.only.split(","))) or {"reply", "chat", "phone", "call40", "chat40"}

    work = Path(args.keep or tempfile.mkdtemp(prefix="vc-bench-returning-"))
    work.mkdir(parents=True, exist_ok=True)
    built_home = work / "built"
    shutil.rmtree(built_home, ignore_errors=True)
    built = build_companion(built_home, args.llm)
    if args.imported:
        built.update(import_history(built_home, args.imported))
    print(f"built: {built}", file=sys.stderr, flush=True)
    voice, cache = tts(), {}
    wavs = work / "wavs"
    wavs.mkdir(exist_ok=True)
    asked = (IMPORTED_QUESTIONS if args.imported else []) + [(q, e) for _, _, q, e in FACTS]
    questions = [(spoken(voice, q, wavs, cache), q, e) for q, e in asked]
    firsts = questions[: args.runs]
    call = [(spoken(voice, t, wavs, cache), t, e) for t, e in call40_script(args.turns)]
    chat_lines = [t for t, _ in call40_script(args.chat_lines)]

    result: dict = {"machine": machine(), "tier": args.llm, "settings": EXTRA_SETTINGS, "companion": built, "modes": {}}
    partial = work / "results.json"  # written after every situation: a cut run keeps what it measured
    for mode in args.modes.split(","):
        home = work / mode
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(built_home, home)
        set_warm(home, args.llm, mode == "warm")
        run_cli(home, ["chat", "--json"], stdin="Good night, Mia.\nTalk tomorrow!\n")  # the last session ends
        modes: dict = {}
        for name, fn in (("reply", measure_reply), ("chat", measure_chat), ("phone", measure_phone)):
            if name in only:
                print(f"[{mode}] {name} …", file=sys.stderr, flush=True)
                rows = fn(home, firsts)
                modes[name] = {**report(rows), "rows": rows}
                _progress(partial, result, mode, modes, name)
        if "call40" in only:
            print(f"[{mode}] call40 …", file=sys.stderr, flush=True)
            rows, rolls = measure_call40(home, call)
            modes["call40"] = {**report(rows), "rolls": rolls, "rows": rows}
            _progress(partial, result, mode, modes, "call40")
        if "chat40" in only:
            print(f"[{mode}] chat40 …", file=sys.stderr, flush=True)
            modes["chat40"] = chat40(home, chat_lines)
            _progress(partial, result, mode, modes, "chat40")
        result["modes"][mode] = modes
        if not args.json:
            print(f"\n== {args.llm}, warm start {'on' if mode == 'warm' else 'off (baseline)'} ==")
            for name, d in modes.items():
                brief = {k: v for k, v in d.items() if k not in ("rows", "replies")}
                print(f"{name:<7} {json.dumps(brief, ensure_ascii=False)}")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
