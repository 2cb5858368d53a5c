#!/usr/bin/env python3
"""Turn-taking on real human speech with pauses inside the turn.

Streams every clip of a manifest (default: ../shared/testdata/speech-pauses, 17 clips in
English, French and Chinese whose internal pauses are labelled `M` mid-clause or `S`
after a complete sentence) at real-time pace into a real `voice-companion serve`, one
fresh server and companion per clip, then silence until the answer has played. The
client plays the reply audio as a phone would (each frame when it is due, flushed when
the server stops the reply) and reports, per clip and in total:

- premature replies: reply audio that started before the speaker had finished, by the
  pause it started in (`M`, `S`) — a reply withdrawn as the user went on (resumed, not
  a barge-in) with at most 300 ms spoken over them counts as recovered, not as a cut
  (issue 16's rule); one started in an `M` pause is a violation either way;
- talk-over: ms of reply audio played while the user was speaking;
- words lost: words the server transcribed (or logged as "speech not answered") that no
  heard reply answered, neither in their own turn nor joined to a later one; beside it,
  `words_missing`: words of Whisper's transcript of the whole clip missing from the
  answered turns (mostly Whisper reading the same audio differently, e.g. "1,001" for
  "one zero zero zero one");
- whole turns: the clip answered once, as one turn;
- reply delay: the end of the speech → the answer's first audio (p50/p95).

Each endpointing policy runs in the same run: `fusion` (today's) and `text` (the older
text-only rule, without resume) as the baseline.

    python scripts/bench_turns.py [--json] [--clips DIR] [--llm tiny] [--policies fusion,text]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

from voice_companion.core.audio import STT_RATE, load_for_stt, to_int16  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.core.language import word_units  # noqa: E402
from voice_companion.engines.loader import load_stt  # noqa: E402
from voice_companion.transports.websocket.audio_frames import AudioFrame  # noqa: E402
from voice_companion.transports.websocket.client import BLOCK, RealtimeClient, speech_end  # noqa: E402

DEFAULT_CLIPS = ROOT.parent / "shared" / "testdata" / "speech-pauses"
MAX_TOKENS = 28  # short answers: the bench is about when they start
TALK_OVER_OK_MS = 300  # a premature reply stopped within this is recovered (issue 16)
LISTEN_AFTER_S = 12.0  # silence sent after the clip, at most, while the answer plays
LOST_MIN_UNITS = 3  # the reference is "mostly missing" when this many of its words are…
LOST_MIN_FRACTION = 0.15  # …and this share of the clip (Whisper reads audio differently)


@dataclass
class Reply:
    response_id: str
    audio_id: int
    created_s: float
    frames: list[tuple[float, float]] = field(default_factory=list)  # (arrival s, duration s)
    stopped_s: float | None = None  # the client flushes its player here
    held: list[list[float]] = field(default_factory=list)  # [paused, resumed] (resumed inf: never)
    status: str = ""
    user_text: str = ""

    def played(self) -> list[tuple[float, float]]:
        """(start, end) intervals the client's speaker played, in clip seconds."""
        out: list[tuple[float, float]] = []
        at = 0.0
        stop = self.stopped_s if self.stopped_s is not None else float("inf")
        for arrival, duration in self.frames:
            start, left = max(arrival, at), duration
            while left > 1e-9 and start < stop:
                hold = next(((p, r) for p, r in self.held if p <= start < r), None)
                if hold is not None:  # the player is held: wait for the resume
                    start = hold[1]
                    continue
                nxt = min([p for p, _ in self.held if p > start] + [stop, start + left])
                out.append((start, nxt))
                left -= nxt - start
                start = nxt
            at = start
        return [(a, b) for a, b in out if b > a]

    @property
    def starts_s(self) -> float | None:
        played = self.played()
        return played[0][0] if played else None


def start_server(home: Path, tier: str, policy: str, token: str) -> tuple[subprocess.Popen, str]:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.toml"
    resume = "" if policy == "fusion" else "resume_window_ms = 0\n"
    config.write_text(
        f'[llm]\ntier = "{tier}"\nmax_tokens = {MAX_TOKENS}\n\n[endpointing]\npolicy = "{policy}"\n\n[turns]\n{resume}'
    )
    log = (home / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "voice_companion", "--config", str(config), "serve", "--port", "0"]
        + [f"--token={token}", "--json"],  # a token may begin with "-"
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
        env={**os.environ, "VOICE_COMPANION_HOME": str(home / "data")},
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        raise SystemExit(f"the server did not start (exit status {process.wait()}); see {home / 'serve.log'}")
    return process, json.loads(line)["url"]


async def call(url: str, token: str, pcm: np.ndarray, end_s: float) -> tuple[list[Reply], list[dict]]:
    replies: dict[str, Reply] = {}
    by_audio: dict[int, Reply] = {}
    events: list[dict] = []
    async with await RealtimeClient.connect(url, token) as client:
        rate = client.output_rate
        t0 = time.perf_counter()
        finished = asyncio.Event()

        async def talk() -> None:
            silence = np.zeros(BLOCK, dtype=np.int16)
            limit = int((end_s + LISTEN_AFTER_S) * STT_RATE / BLOCK)
            for i in range(limit):
                await asyncio.sleep(max(0.0, t0 + (i + 1) * BLOCK / STT_RATE - time.perf_counter()))
                block = pcm[i * BLOCK : (i + 1) * BLOCK]
                await client.send_audio(block if len(block) == BLOCK else silence)
                if finished.is_set():
                    return

        talker = asyncio.create_task(talk())
        last_text = ""
        try:
            while not talker.done():
                try:
                    message = await asyncio.wait_for(client.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.perf_counter() - t0
                if isinstance(message, AudioFrame):
                    reply = by_audio.get(message.audio_id)
                    if reply is not None:
                        reply.frames.append((now, len(message.samples) / rate))
                    continue
                kind = message.get("type", "")
                events.append({"t": round(now, 3), **{k: v for k, v in message.items() if k != "session"}})
                if kind == "conversation.item.input_audio_transcription.completed":
                    last_text = message.get("text", "")
                elif kind == "response.created":
                    reply = Reply(message["response_id"], message.get("audio_id", 0), now)
                    reply.user_text = last_text
                    replies[reply.response_id] = by_audio[reply.audio_id] = reply
                elif kind == "response.done" and message["response_id"] in replies:
                    reply = replies[message["response_id"]]
                    reply.status = message.get("status", "")
                    if reply.status != "completed":
                        reply.stopped_s = reply.stopped_s or now
                    elif now > end_s:
                        finished.set()
                elif kind == "response.output_audio.paused" and message["response_id"] in replies:
                    replies[message["response_id"]].held.append([now, float("inf")])
                elif kind == "response.output_audio.resumed" and message["response_id"] in replies:
                    held = replies[message["response_id"]].held
                    if held and held[-1][1] == float("inf"):
                        held[-1][1] = now
                elif kind == "response.interrupted" and message["response_id"] in replies:
                    replies[message["response_id"]].stopped_s = now
        finally:
            talker.cancel()
            await asyncio.gather(talker, return_exceptions=True)
    return list(replies.values()), events


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def lost_words(replies: list[Reply], events: list[dict], log_text: str) -> list[str]:
    """Words heard by the server that no heard reply answered (in their turn or a later one)."""
    answered = [collections.Counter(word_units(r.user_text)) for r in replies if r.status != "retracted" and r.starts_s]
    said = [e["text"] for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
    said += [m.group(1) for m in re.finditer(r"speech not answered \([^)]*\): '(.*)'", log_text)]
    lost = []
    for text in said:
        wanted = collections.Counter(word_units(text))
        if wanted and not any(not (wanted - got) for got in answered):
            lost.append(text)
    return lost


def analyse(clip: dict, replies: list[Reply], end_s: float, reference: str, lost: list[str]) -> dict:
    pauses = [(p[0], p[1], kind) for p, kind in zip(clip["pauses"], clip["pause_types"], strict=True)]
    speech, at = [], 0.0
    for start, stop, _ in pauses:
        speech.append((at, start))
        at = stop
    speech.append((at, end_s))
    premature, talk_over = [], 0.0
    for reply in replies:
        start = reply.starts_s
        if start is None or start >= end_s:
            continue
        where = next((kind for p0, p1, kind in pauses if p0 <= start < p1), "speaking")
        over = overlap(reply.played(), speech) * 1000
        talk_over += over
        # resumed: withdrawn as the user went on (a barge-in that splits the turn is a cut)
        recovered = reply.status == "retracted" and over <= TALK_OVER_OK_MS
        premature.append({"at_s": round(start, 2), "in": where, "talk_over_ms": round(over), "recovered": recovered})
    answered = [r for r in replies if r.status != "retracted" and r.starts_s is not None]
    heard = collections.Counter(u for r in answered for u in word_units(r.user_text))
    wanted = collections.Counter(word_units(reference))
    missing = sum((wanted - heard).values())
    total = max(1, sum(wanted.values()))
    answer = next((r for r in replies if r.status != "retracted" and (r.starts_s or 0) >= end_s), None)
    kept = [r for r in replies if r.status != "retracted" and r.starts_s is not None]
    return {
        "clip": clip["id"],
        "language": clip["language"],
        "pauses": {kind: clip["pause_types"].count(kind) for kind in ("M", "S")},
        "premature": premature,
        "cut": any(not p["recovered"] for p in premature),
        "started_in_m": sum(p["in"] in ("M", "speaking") for p in premature),
        "started_in_s": sum(p["in"] == "S" for p in premature),
        "talk_over_ms": round(talk_over),
        "words_missing": missing,
        "words_lost": bool(lost),
        "lost": lost,
        "reference_mostly_missing": missing >= LOST_MIN_UNITS and missing / total >= LOST_MIN_FRACTION,
        "whole_turn": len(kept) == 1 and (kept[0].starts_s or 0) >= end_s,
        "delay_ms": round((answer.starts_s - end_s) * 1000) if answer and answer.starts_s else None,
        "turns": [{"user": r.user_text, "status": r.status, "starts_s": r.starts_s} for r in replies],
    }


def totals(rows: list[dict]) -> dict:
    delays = [r["delay_ms"] for r in rows if r["delay_ms"] is not None]
    return {
        "clips": len(rows),
        "cut_early": sum(r["cut"] for r in rows),
        "replies_started_in_m_pause": sum(r["started_in_m"] for r in rows),
        "replies_started_in_s_pause": sum(r["started_in_s"] for r in rows),
        "clips_with_words_lost": sum(r["words_lost"] for r in rows),
        "talk_over_ms": sum(r["talk_over_ms"] for r in rows),
        "whole_turns": sum(r["whole_turn"] for r in rows),
        "unanswered": sum(r["delay_ms"] is None for r in rows),
        "delay_ms": summary(delays) if delays else {},
    }


def by(rows: list[dict], key: str) -> dict:
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return {name: totals(group) for name, group in sorted(groups.items())}


def run_policy(clips: list[dict], folder: Path, args: argparse.Namespace, references: dict[str, str]) -> list[dict]:
    rows = []
    for clip in clips:
        pcm = to_int16(load_for_stt(Path(args.clips) / clip["file"]))
        end_s = speech_end(pcm) / STT_RATE
        token = secrets.token_urlsafe(16)
        home = folder / clip["id"]
        process, url = start_server(home, args.llm, args.policy_now, token)
        try:
            replies, events = asyncio.run(call(url, token, pcm, end_s))
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        (home / "events.json").write_text(json.dumps(events, ensure_ascii=False, indent=1))
        lost = lost_words(replies, events, (home / "serve.log").read_text(encoding="utf-8", errors="replace"))
        row = analyse(clip, replies, end_s, references[clip["id"]], lost)
        rows.append(row)
        brief = {k: row[k] for k in ("cut", "started_in_m", "talk_over_ms", "words_missing", "delay_ms")}
        print(f"[{args.policy_now}] {clip['id']}: {json.dumps(brief)}", file=sys.stderr, flush=True)
    return rows


def print_table(result: dict) -> None:
    for policy, data in result["policies"].items():
        t = data["total"]
        d = t["delay_ms"]
        print(
            f"{policy:7} cut early {t['cut_early']}/{t['clips']}, "
            f"replies in M pauses {t['replies_started_in_m_pause']}, "
            f"in S pauses {t['replies_started_in_s_pause']}, words lost in {t['clips_with_words_lost']}, "
            f"talk-over {t['talk_over_ms']} ms, whole turns {t['whole_turns']}, "
            f"delay p50 {d.get('p50', float('nan')):.0f} / p95 {d.get('p95', float('nan')):.0f} ms"
        )
        for lang, g in data["by_language"].items():
            dl = g["delay_ms"]
            print(
                f"   {lang}: cut {g['cut_early']}/{g['clips']}, M {g['replies_started_in_m_pause']}, "
                f"S {g['replies_started_in_s_pause']}, lost {g['clips_with_words_lost']}, "
                f"delay p50 {dl.get('p50', float('nan')):.0f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default=str(DEFAULT_CLIPS), help="a folder with manifest.json and the WAV files")
    parser.add_argument("--llm", default="tiny", help="brain tier (default tiny)")
    parser.add_argument("--policies", default="fusion,text", help="endpointing policies to run (first is ours)")
    parser.add_argument("--only", default="", help="comma list of clip ids")
    parser.add_argument("--keep", help="keep every clip's server home, log and events here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    manifest = Path(args.clips) / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"no manifest.json in {args.clips}; pass --clips with the speech-pauses folder")
    clips = json.loads(manifest.read_text(encoding="utf-8"))["clips"]
    if args.only:
        clips = [c for c in clips if c["id"] in set(args.only.split(","))]
    print("transcribing the whole clips (the reference) …", file=sys.stderr, flush=True)
    stt = load_stt(Settings())
    references = {c["id"]: stt.transcribe(load_for_stt(Path(args.clips) / c["file"])).text for c in clips}
    del stt
    work = Path(args.keep or tempfile.mkdtemp(prefix="vc-bench-turns-"))
    result: dict = {"machine": machine(), "tier": args.llm, "clips": len(clips), "policies": {}}
    for policy in args.policies.split(","):
        args.policy_now = policy
        rows = run_policy(clips, work / policy, args, references)
        result["policies"][policy] = {
            "total": totals(rows),
            "by_language": by(rows, "language"),
            "rows": rows,
        }
    (work / "results.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
