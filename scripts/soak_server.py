#!/usr/bin/env python3
"""Soak the phone server: N callers talking in turn for a long time, leaks and latency watched.

    python scripts/soak_server.py [--clients 8] [--duration 1800] [--window 60] [--llm tiny] [--json]

The server runs in its own process (this script with `--serve`, the same `App` that
`voice-companion serve` builds) and prints, every few seconds, its live asyncio tasks,
threads (native ones included), open file descriptors, resident memory and calls. Each client loops: a spoken
question at real-time pace (`voice_companion.transports.websocket.client.call_file`, one call per turn, as
bench_server.py), the reply, a pause; starts are staggered. Reported: voice-to-voice
p50/p95 per time window, failed turns, and the server's figures at the start (after
the first window, once warm), the peak and the end (idle, after the callers left).
Exit status 1 if a turn failed, something leaked, or memory still grew past
--max-growth-mb in the second half of the run (by then the kept conversations and
llama.cpp's prompt cache have filled to their caps; growth there is a leak).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

SAMPLE_S = 2.0
IDLE_WAIT_S = 8.0  # after the callers stop: sessions wind down (up to 5 s each)


def serve(config: str, token: str, data_dir: str) -> None:
    """The server process: print the URL, then one stats line every SAMPLE_S seconds.
    Its companion (persona, memory) lives in `data_dir`, never in the user's own."""
    import dataclasses
    import logging

    from voice_companion.cli.server_commands import _app
    from voice_companion.core.config import load_settings

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(config)
    settings.paths = dataclasses.replace(settings.paths, data_dir=Path(data_dir))
    app = _app(settings, token, 16, None)

    async def main() -> None:
        server = await app.listen("127.0.0.1", 0)
        print(json.dumps({"url": f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"}), flush=True)
        while True:
            print(
                json.dumps(
                    {
                        "t": time.time(),
                        "tasks": len(asyncio.all_tasks()),
                        "threads": len(os.listdir("/proc/self/task")),
                        "fds": len(os.listdir("/proc/self/fd")),
                        "rss_mb": round(_rss_mb(), 1),
                        "calls": len(app.connections),
                    }
                ),
                flush=True,
            )
            await asyncio.sleep(SAMPLE_S)

    asyncio.run(main())


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


class Server:
    def __init__(self, folder: Path, tier: str, token: str, max_tokens: int) -> None:
        config = folder / "config.toml"
        config.write_text(f'[llm]\ntier = "{tier}"\nmax_tokens = {max_tokens}\n')
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(config), token, str(folder / "data")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the server did not start (exit status {self.process.wait()})")
        self.url = json.loads(line)["url"]
        self.samples: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.samples.append(json.loads(line))

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(30)


async def caller(
    url: str,
    token: str,
    questions: list[Path],
    index: int,
    start: float,
    until: float,
    stagger_s: float,
    pause_s: float,
    turns: list[dict],
) -> None:
    from websockets.exceptions import ConnectionClosed

    from voice_companion.core.errors import CompanionError
    from voice_companion.transports.websocket.client import call_file

    await asyncio.sleep(index * stagger_s)
    n = 0
    while time.monotonic() < until:
        question = questions[(index + n) % len(questions)]
        began = time.monotonic() - start
        try:
            result = await call_file(url, token, question, None, timeout_s=120)
            ok = result.status == "completed" and result.v2v_ms is not None and not result.errors
            turns.append(
                {
                    "t": began,
                    "client": index,
                    "ok": ok,
                    "v2v_ms": result.v2v_ms,
                    "error": None if ok else f"status {result.status!r}, errors {result.errors}",
                }
            )
        except (CompanionError, ConnectionClosed, OSError) as exc:
            turns.append(
                {"t": began, "client": index, "ok": False, "v2v_ms": None, "error": f"{type(exc).__name__}: {exc}"}
            )
        n += 1
        await asyncio.sleep(pause_s)


def windows(turns: list[dict], window_s: float, samples: list[dict], wall_start: float) -> list[dict]:
    """Latency per window, and the server's memory at each window's end (is it levelling off?)."""
    out = []
    for w in range(int(max((t["t"] for t in turns), default=0) // window_s) + 1):
        inside = [t for t in turns if w * window_s <= t["t"] < (w + 1) * window_s]
        good = [t["v2v_ms"] for t in inside if t["ok"]]
        out.append(
            {
                "from_s": w * window_s,
                "turns": len(inside),
                "failed": len(inside) - len(good),
                "v2v_ms": summary(good) if good else None,
                "server_rss_mb": _sample_at(samples, wall_start + (w + 1) * window_s)["rss_mb"],
            }
        )
    return out


def _sample_at(samples: list[dict], wall: float) -> dict:
    """The server's last report at or before `wall` (its first one if none was)."""
    return next((s for s in reversed(samples) if s["t"] <= wall), samples[0])


def verdict(samples: list[dict], warm_at: float, half_at: float, idle: dict, max_growth_mb: float) -> dict:
    """Leaks: what is left once the callers are gone, and memory still growing in the
    run's second half. Growth before that is expected: the kept conversations (64) and
    llama.cpp's prompt cache (`llm.prompt_cache_mib`) fill up, then stay at their size."""
    warm, half, first = _sample_at(samples, warm_at), _sample_at(samples, half_at), samples[0]
    growth = idle["rss_mb"] - warm["rss_mb"]
    late_growth = idle["rss_mb"] - half["rss_mb"]
    return {
        "start": first,
        "warm": warm,
        "half": half,
        "end_idle": idle,
        "peak": {k: max(s[k] for s in samples) for k in ("tasks", "threads", "fds", "rss_mb", "calls")},
        "rss_growth_after_warmup_mb": round(growth, 1),
        "rss_growth_second_half_mb": round(late_growth, 1),
        "leaks": [
            what
            for what, bad in [
                ("calls still open", idle["calls"] != 0),
                ("asyncio tasks", idle["tasks"] > first["tasks"] + 2),
                ("file descriptors", idle["fds"] > first["fds"] + 4),
                ("threads", idle["threads"] > max(s["threads"] for s in samples if s["t"] <= warm["t"]) + 2),
                (
                    f"memory grew {late_growth:.0f} MB in the second half (limit {max_growth_mb:g})",
                    late_growth > max_growth_mb,
                ),
            ]
            if bad
        ],
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        return serve(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="callers at once (default 8)")
    parser.add_argument("--duration", type=float, default=1800, help="seconds of talking (default 1800)")
    parser.add_argument("--window", type=float, default=60, help="seconds per latency window (default 60)")
    parser.add_argument("--stagger", type=float, default=1.5, help="seconds between callers' starts")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds each caller waits between turns")
    parser.add_argument("--llm", default="tiny", help="LLM tier of the server (default tiny)")
    parser.add_argument("--max-tokens", type=int, default=28, help="reply length cap (default 28)")
    parser.add_argument(
        "--max-growth-mb", type=float, default=100, help="memory growth allowed in the run's second half (default 100)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from bench_server import speak_questions

    token = secrets.token_urlsafe(18)
    turns: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="soak-server-") as tmp:
        questions = speak_questions(Path(tmp))
        server = Server(Path(tmp), args.llm, token, args.max_tokens)
        try:
            start = time.monotonic()
            wall_start = time.time()
            asyncio.run(_talk(server.url, token, questions, args, start, turns))
            time.sleep(IDLE_WAIT_S)
            idle = server.samples[-1]
        finally:
            exit_status = server.stop()
    report = {
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "llm": args.llm,
        "clients": args.clients,
        "duration_s": args.duration,
        "window_s": args.window,
        "turns": len(turns),
        "failed": sum(not t["ok"] for t in turns),
        "errors": sorted({t["error"] for t in turns if t["error"]})[:20],
        "windows": windows(turns, args.window, server.samples, wall_start),
        "server": verdict(
            server.samples, wall_start + args.window, wall_start + args.duration / 2, idle, args.max_growth_mb
        ),
        "server_exit": exit_status,
    }
    report["ok"] = bool(turns) and not report["failed"] and not report["server"]["leaks"]
    print(json.dumps(report) if args.json else json.dumps(report, indent=1, ensure_ascii=False))
    sys.exit(0 if report["ok"] else 1)


async def _talk(url: str, token: str, questions: list[Path], args, start: float, turns: list[dict]) -> None:
    until = start + args.duration
    await asyncio.gather(
        *(caller(url, token, questions, i, start, until, args.stagger, args.pause, turns) for i in range(args.clients))
    )


if __name__ == "__main__":
    main()
