#!/usr/bin/env python3
"""Load time and speed of each engine on this machine, with a baseline in the same run.

    python scripts/bench_engines.py [--runs N] [--json]

- STT: real-time factor of Whisper base (int8) on English (Piper) and Chinese
  (recorded) utterances — ours (greedy) vs faster-whisper's default beam 5.
- LLM: prefill tok/s cold vs with the cached prefix, generation tok/s.
- TTS: time to the first clause's audio vs synthesising the whole reply at once.
Prints p50/p95 per measurement; `--json` prints one object on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_companion.conversation.chunker import split_clauses  # noqa: E402
from voice_companion.core.audio import load_for_stt, resample  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.engines.llm import ChatMessage, GenerationOptions  # noqa: E402
from voice_companion.engines.loader import LoadTimes, load_llm, load_stt, load_tts  # noqa: E402
from voice_companion.engines.models.tiers import TIERS  # noqa: E402

QUESTIONS = [
    "I had a rough day at work, my boss yelled at me.",
    "What is a good way to relax before going to sleep?",
    "Can you help me practise a little French tonight?",
    "My exam is on Friday and I am nervous about it.",
]
REPLY = (
    "I'm sorry your day was so hard. That sounds really stressful, and it's okay to "
    "feel upset. Do you want to tell me what happened, or should we talk about "
    "something nicer for a while?"
)
PERSONA = (
    "You are Mia, the user's warm and witty companion. You talk out loud like on a "
    "video call. Answer in one to three short sentences. "
) * 6


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 50), 3), "p95": round(pct(values, 95), 3), "n": len(values)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def bench_stt(stt, tts, runs: int) -> dict:
    clips = []
    for q in QUESTIONS:
        audio = tts.synthesize_all(q).astype(np.float32) / 32768
        clips.append(resample(audio, tts.sample_rate, 16000))
    clips += [load_for_stt(p) for p in sorted((ROOT / "tests" / "data").glob("zh_*.wav"))]
    out = {}
    # ours: greedy on a window cut to the speech; baseline: faster-whisper's own loop
    # over the full 30 s window with its default beam of 5.
    for label, beam, margin in (("ours_short_window_greedy", 1, 1.5), ("baseline_30s_beam5", 5, None)):
        stt.beam_size, stt.window_margin_s = beam, margin
        rtf, ms = [], []
        for _ in range(runs):
            for clip in clips:
                r = stt.transcribe(clip)
                ms.append(r.stt_ms)
                rtf.append(r.stt_ms / 1000 / r.duration_s)
        out[label] = {"rtf": summary(rtf), "ms": summary(ms)}
    stt.beam_size, stt.window_margin_s = 1, 1.5
    return out


def bench_llm(llm, runs: int) -> dict:
    cold_tps, warm_tps, gen_tps, warm_ms, cold_ms = [], [], [], [], []
    options = GenerationOptions(max_tokens=48, temperature=0.0)
    for i in range(runs):
        system = ChatMessage("system", f"[session {i} {time.time()}] " + PERSONA)  # new prefix = cold
        for j, q in enumerate(QUESTIONS):
            t = llm.complete([system, ChatMessage("user", q)], options)["timings"]
            tps = t["prompt_n"] / (t["prompt_ms"] / 1000) if t["prompt_ms"] else float("nan")
            (cold_tps if j == 0 else warm_tps).append(tps)
            (cold_ms if j == 0 else warm_ms).append(t["prompt_ms"])
            gen_tps.append(t["predicted_per_second"])
    return {
        "prefill_cold_tok_s": summary(cold_tps),
        "prefill_cold_ms": summary(cold_ms),
        "prefill_cached_prefix_ms": summary(warm_ms),
        "prefill_cached_tok_s": summary(warm_tps),
        "generation_tok_s": summary(gen_tps),
    }


def bench_tts(tts, runs: int) -> dict:
    first, whole, rtf = [], [], []
    first_clause = split_clauses(REPLY)[0]
    for _ in range(runs):
        start = time.perf_counter()
        next(iter(tts.synthesize(first_clause)))
        first.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        audio = tts.synthesize_all(REPLY)
        elapsed = time.perf_counter() - start
        whole.append(elapsed * 1000)
        rtf.append(elapsed / (len(audio) / tts.sample_rate))
    return {
        "first_clause_audio_ms": summary(first),
        "baseline_whole_reply_ms": summary(whole),
        "rtf": summary(rtf),
        "first_clause": first_clause,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--llm",
        default="tiny",
        choices=list(TIERS),
        help="LLM tier (default tiny: the tier docs/benchmarks.md reports)",
    )
    args = parser.parse_args()
    settings = Settings()
    settings.llm.tier = args.llm
    loads = LoadTimes()
    stt, llm, tts = load_stt(settings, loads), load_llm(settings, loads), load_tts(settings, loads)
    result = {
        "machine": machine(),
        "load_s": {k: round(v, 3) for k, v in loads.seconds.items()},
        "stt": bench_stt(stt, tts, args.runs),
        "llm": bench_llm(llm, args.runs),
        "tts": bench_tts(tts, max(args.runs, 5)),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
