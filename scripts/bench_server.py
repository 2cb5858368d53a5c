#!/usr/bin/env python3
"""The phone server under load: 1, 4 and 8 callers at once on loopback.

    python scripts/bench_server.py [--llm TIER] [--callers 1,4,8] [--turns N] [--stagger S] [--json]

Starts `voice-companion serve` on 127.0.0.1 in its own process (models loaded once,
shared by every call), then for each concurrency C runs rounds in which C callers
(`voice_companion.transports.websocket.client.call_file`, one WebSocket each) say a different spoken
question at real-time pace, their starts `--stagger` seconds apart, and wait for the
whole reply. Reports per concurrency: voice-to-voice as the caller hears it (end of
its sent speech → first reply audio frame received) and each server stage from
`metrics.turn`, p50/p95. Replies are capped at 28 tokens, as in bench_latency.py.
`--json` prints one object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from voice_companion.core.audio import write_wav  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.core.errors import CompanionError  # noqa: E402
from voice_companion.engines.loader import voice_path  # noqa: E402
from voice_companion.engines.tts import PiperTTS, VoiceSettings  # noqa: E402
from voice_companion.transports.websocket.client import call_file  # noqa: E402

QUESTIONS = [
    "Hi Mia, how was your day?",
    "What is a good way to relax before going to sleep?",
    "My exam is on Friday and I am nervous about it.",
    "Tell me something that will make me smile.",
    "What should I cook for dinner tonight?",
    "I think I will go for a walk in the park.",
    "What is your favourite season of the year?",
    "Should I call my sister this weekend?",
]
STAGES = (
    "endpoint_delay_ms",
    "stt_ms",
    "llm_first_token_ms",
    "first_clause_ms",
    "tts_first_audio_ms",
    "voice_to_voice_ms",
)
MAX_TOKENS = 28


def speak_questions(folder: Path) -> list[Path]:
    """Each question as a WAV (Piper, deterministic), like a caller's recording."""
    voice = PiperTTS(voice_path(Settings()), VoiceSettings(noise_scale=0, noise_w=0))
    return [
        write_wav(folder / f"q{i}.wav", voice.synthesize_all(q), voice.sample_rate) for i, q in enumerate(QUESTIONS)
    ]


def start_server(folder: Path, tier: str, token: str, parallel: int = 1) -> tuple[subprocess.Popen, str]:
    config = folder / "config.toml"
    config.write_text(f'[llm]\ntier = "{tier}"\nmax_tokens = {MAX_TOKENS}\nparallel = {parallel}\n')
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voice_companion",
            "--config",
            str(config),
            "-q",
            "serve",
            "--port",
            "0",
            "--token",
            token,
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the server did not start (exit status {process.wait()})")
    return process, json.loads(line)["url"]


async def one_call(url: str, token: str, question: Path, delay_s: float) -> dict:
    await asyncio.sleep(delay_s)
    try:
        result = await call_file(url, token, question, None, timeout_s=120)
    except (CompanionError, ConnectionClosed) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    ok = result.status == "completed" and result.v2v_ms is not None and not result.errors
    return {
        "ok": ok,
        "v2v_ms": result.v2v_ms,
        "stages": result.server_metrics,
        "error": None if ok else f"status {result.status!r}, errors {result.errors}",
    }


async def run_level(url: str, token: str, questions: list[Path], callers: int, turns: int, stagger_s: float) -> dict:
    """ceil(turns / callers) rounds of `callers` calls at once, starts staggered."""
    calls: list[dict] = []
    for round_ in range(math.ceil(turns / callers)):
        calls += await asyncio.gather(
            *(
                one_call(url, token, questions[(round_ * callers + i) % len(questions)], i * stagger_s)
                for i in range(callers)
            )
        )
        await asyncio.sleep(1.0)  # let the server settle between rounds
    good = [c for c in calls if c["ok"]]
    return {
        "callers": callers,
        "turns": len(calls),
        "failed": len(calls) - len(good),
        "errors": sorted({c["error"] for c in calls if not c["ok"]}),
        "v2v_ms": summary([c["v2v_ms"] for c in good]) if good else None,
        "stages_ms": {
            s: summary([c["stages"][s] for c in good if c["stages"].get(s) is not None])
            for s in STAGES
            if any(c["stages"].get(s) is not None for c in good)
        },
        "speculative_hits": sum(bool(c["stages"].get("speculative_hit")) for c in good),
    }


async def bench(
    url: str, token: str, questions: list[Path], levels: list[int], turns: int, stagger_s: float
) -> list[dict]:
    await one_call(url, token, questions[0], 0)  # warm-up, not counted
    return [await run_level(url, token, questions, c, turns, stagger_s) for c in levels]


def print_table(report: dict) -> None:
    """A Markdown table, ready for docs/benchmarks.md."""
    stopped = report["server_stopped_in_s"]
    print(
        f"{report['machine']}, {report['date']}, LLM tier {report['llm']}, replies ≤ {MAX_TOKENS} tokens, "
        f"starts {report['stagger_s']} s apart, llm.parallel = {report['parallel']}; "
        f"server stopped in {'> 60 s (killed)' if stopped is None else f'{stopped} s'}\n"
    )
    header = ["callers", "turns", "failed", "v2v heard", *[s.removesuffix("_ms") for s in STAGES]]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))

    def cell(stat: dict | None) -> str:
        return f"{stat['p50']:.0f} / {stat['p95']:.0f}" if stat else "-"

    for level in report["levels"]:
        row = [
            str(level["callers"]),
            str(level["turns"]),
            str(level["failed"]),
            cell(level["v2v_ms"]),
            *[cell(level["stages_ms"].get(s)) for s in STAGES],
        ]
        print("| " + " | ".join(row) + " |")
    print("\np50 / p95 in ms; v2v heard = end of the caller's speech → first reply audio frame received")
    for level in report["levels"]:
        for error in level["errors"]:
            print(f"{level['callers']} callers, error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="tiny", help="LLM tier of the server (default tiny)")
    parser.add_argument("--parallel", type=int, default=1, help="replies the LLM generates at once (llm.parallel)")
    parser.add_argument("--callers", default="1,4,8", help="concurrency levels (default 1,4,8)")
    parser.add_argument("--turns", type=int, default=12, help="turns per concurrency, at least (default 12)")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between callers' starts (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    token = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        folder = Path(tmp)
        questions = speak_questions(folder)
        server, url = start_server(folder, args.llm, token, args.parallel)
        try:
            callers = [int(c) for c in args.callers.split(",")]
            levels = asyncio.run(bench(url, token, questions, callers, args.turns, args.stagger))
        finally:
            server.terminate()
            try:
                stop_s = time.perf_counter()
                server.wait(60)
                stopped_in_s = round(time.perf_counter() - stop_s, 1)
            except subprocess.TimeoutExpired:  # reported, not a lost run
                server.kill()
                stopped_in_s = None
    report = {
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "llm": args.llm,
        "max_tokens": MAX_TOKENS,
        "stagger_s": args.stagger,
        "parallel": args.parallel,
        "server_stopped_in_s": stopped_in_s,  # None: still running after 60 s, killed
        "levels": levels,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
