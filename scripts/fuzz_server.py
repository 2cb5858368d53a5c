#!/usr/bin/env python3
"""Fuzz the phone server and its parser, and print the figures (docs/reliability.md).

    python scripts/fuzz_server.py [--frames N] [--parser N] [--json]

1. Parser: `--parser N` generated text and binary frames straight into
   `parse_text`/`parse_audio` (hypothesis): each must give an event or a documented error.
2. Live server: the `serve` command's `App` (tiny LLM, a companion in a temporary data
   directory) in its own process (scripts/soak_server.py's); generated
   sequences of frames (hypothesis, the strategies of tests/fuzz_frames.py) on fresh
   connections until `--frames N` frames were sent, while a bystander call pings every
   0.2 s. Each sequence must end in a pong or a documented close (tests/fuzz_live.py).
   The server's resident memory, threads and open files are sampled as it goes.
Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "scripts", ROOT / "tests"):
    sys.path.insert(0, str(extra))

from bench_engines import machine, summary  # noqa: E402
from fuzz_frames import FRAMES  # noqa: E402
from fuzz_live import Bystander, Tally, rss_mb, run_sequence  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st
from soak_server import Server  # noqa: E402
from test_fuzz_protocol import check_text  # noqa: E402

from voice_companion.transports.websocket import protocol as p  # noqa: E402
from voice_companion.transports.websocket.audio_frames import parse_audio  # noqa: E402

# websockets draws its frame masks from `random` inside each example; harmless here
warnings.filterwarnings("ignore", message="Do not use the `random` module inside strategies")
BATCH = 250  # hypothesis examples per run; runs repeat until enough frames were sent
QUIET = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def fuzz_parser(n: int) -> dict:
    counts = {"frames": 0, "events": 0, "rejected": 0, "failures": []}

    @settings(max_examples=n, **QUIET)
    @given(FRAMES)
    def one(frame):
        counts["frames"] += 1
        try:
            if isinstance(frame, bytes):
                parse_audio(frame)
            else:
                check_text(frame)
                p.parse_text(frame)
            counts["events"] += 1
        except p.ProtocolError:
            counts["rejected"] += 1

    started = time.perf_counter()
    try:
        one()
    except Exception as exc:  # noqa: BLE001 - the finding itself
        counts["failures"].append(f"{type(exc).__name__}: {exc}"[:500])
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def process_stats(pid: int) -> dict:
    return {
        "rss_mb": round(rss_mb(pid), 1),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def fuzz_live(url: str, token: str, pid: int, frames: int) -> dict:
    tally, samples = Tally(), []

    @settings(max_examples=BATCH, **QUIET)
    @given(st.lists(FRAMES, min_size=10, max_size=30))
    def batch(sequence):
        asyncio.run(run_sequence(url, token, sequence, tally))

    started = time.perf_counter()
    with Bystander(url, token) as bystander:
        samples.append({"frames": 0, **process_stats(pid)})
        while tally.frames < frames and not tally.failures:
            batch()
            samples.append({"frames": tally.frames, **process_stats(pid)})
            print(f"  {tally.frames} frames, {tally.sequences} sequences, {samples[-1]}", file=sys.stderr)
    time.sleep(6)  # closed sessions wind down (up to 5 s each)
    samples.append({"frames": tally.frames, "after_s": 6, **process_stats(pid)})
    return {
        "frames": tally.frames,
        "sequences": tally.sequences,
        "ended_alive": tally.alive,
        "closes": dict(tally.closes),
        "error_events": dict(tally.errors),
        "failures": tally.failures[:20],
        "seconds": round(time.perf_counter() - started, 1),
        "bystander": {
            "failure": bystander.failure,
            "pings": len(bystander.latencies_ms),
            "pong_ms": summary(bystander.latencies_ms) if bystander.latencies_ms else None,
        },
        "server_samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="frames to send to the live server")
    parser.add_argument("--parser", type=int, default=100_000, help="frames for the parser alone")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    report = {"machine": machine(), "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    report["parser"] = fuzz_parser(args.parser) if args.parser else None
    token = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="fuzz-server-") as tmp:
        server = Server(Path(tmp), "tiny", token, max_tokens=28)
        try:
            report["live"] = fuzz_live(server.url, token, server.process.pid, args.frames) if args.frames else None
        finally:
            report["server_exit"] = server.stop()
    failed = bool(
        (report["parser"] or {}).get("failures")
        or (report["live"] or {}).get("failures")
        or (report["live"] or {}).get("bystander", {}).get("failure")
    )
    report["ok"] = not failed
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=1, ensure_ascii=False))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
