#!/usr/bin/env python3
"""Conversation quality per LLM tier, with automatic checks and no judge model.

    python scripts/eval_conversation.py [--llm tiny,small] [--repeat N] [--json] [--show]

Runs the fixed prompt set in scripts/eval_prompts.toml (comfort, small talk, recall of
facts from the profile, Chinese, French practice, a topic change, a distressing
message) through each tier with the companion's own system prompt and the tier's
sampling, then applies voice_companion/companion/eval_checks.py to every reply. Prints
the pass rate per check and overall for each tier; `--json` prints one object on stdout.
Replies are sampled (temperature > 0), so rates move a little between runs; `--repeat`
runs every prompt more times for steadier numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_companion.companion.eval_checks import CHECKS, Case, load_eval_set, run_checks  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.core.errors import CompanionError  # noqa: E402
from voice_companion.core.prompts import PERSONA, with_memory  # noqa: E402
from voice_companion.engines.llm import ChatMessage  # noqa: E402
from voice_companion.engines.loader import generation_options, load_llm  # noqa: E402
from voice_companion.engines.models import tiers  # noqa: E402

PROMPTS = ROOT / "scripts" / "eval_prompts.toml"


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def messages_for(system: str, case: Case) -> list[ChatMessage]:
    roles = ("user", "assistant")
    history = [ChatMessage(roles[i % 2], text) for i, text in enumerate(case.history)]
    return [ChatMessage("system", system), *history, ChatMessage("user", case.user)]


async def reply_to(llm, messages: list[ChatMessage], options) -> str:
    parts = [delta async for delta in llm.stream(messages, options)]
    return "".join(parts).strip()


def tier_settings(name: str, threads: int | None) -> Settings:
    """Plain defaults with the tier chosen, so a user's config.toml cannot skew the numbers."""
    settings = Settings()
    settings.llm.tier = name
    if threads:
        settings.llm.threads = settings.llm.generation_threads = threads
    return settings


def evaluate_tier(name: str, eval_set, repeat: int, show: bool, threads: int | None) -> dict:
    settings = tier_settings(name, threads)
    try:
        choice = tiers.select(settings)
        started = time.perf_counter()
        llm = load_llm(settings)
    except CompanionError as exc:
        print(f"[{name}] skipped: {exc}", file=sys.stderr)
        return {"skipped": str(exc)}
    load_s = time.perf_counter() - started
    options = generation_options(settings)
    system = with_memory(PERSONA.replace("{name}", eval_set.companion), eval_set.facts)
    counts = {check: [0, 0] for check in CHECKS}  # passed, applicable
    failures, reply_s = [], []
    cpu_started = time.process_time()  # llama.cpp's threads included; unlike wall time, not
    # inflated when other work on the machine pauses or slows this process
    try:
        for _ in range(repeat):
            for case in eval_set.cases:
                t0 = time.perf_counter()
                reply = asyncio.run(reply_to(llm, messages_for(system, case), options))
                reply_s.append(time.perf_counter() - t0)
                results = run_checks(reply, case)
                for check, ok in results.items():
                    counts[check][0] += ok
                    counts[check][1] += 1
                failed = [check for check, ok in results.items() if not ok]
                if failed:
                    failures.append({"case": case.id, "failed": failed, "reply": reply})
                if show:
                    mark = "ok  " if not failed else "FAIL"
                    print(f"[{name}] {mark} {case.id}: {reply!r} {failed or ''}", file=sys.stderr)
    finally:
        llm.close()
    passed = sum(p for p, _ in counts.values())
    total = sum(n for _, n in counts.values())
    print(f"[{name}] {passed}/{total} checks passed", file=sys.stderr)
    return {
        "model": choice.model or choice.model_path or settings.llm.remote_model,
        "sampling": dataclasses.asdict(options),
        "overall": round(passed / total, 3) if total else None,
        "passed": passed,
        "checks_run": total,
        "checks": {
            c: {"passed": p, "total": n, "rate": round(p / n, 3) if n else None} for c, (p, n) in counts.items()
        },
        "replies": len(reply_s),
        "load_s": round(load_s, 2),
        "seconds": round(sum(reply_s), 1),
        "cpu_s": round(time.process_time() - cpu_started, 1),
        "reply_s_mean": round(sum(reply_s) / len(reply_s), 2) if reply_s else None,
        "failures": failures,
    }


def print_table(results: dict[str, dict]) -> None:
    names = [n for n, r in results.items() if "skipped" not in r]
    for n, r in results.items():
        if "skipped" in r:
            print(f"{n}: skipped ({r['skipped']})")
    if not names:
        return
    print(f"{'check':<12}" + "".join(f"{n:>20}" for n in names))
    for check in CHECKS:
        cells = []
        for n in names:
            c = results[n]["checks"][check]
            cells.append(f"{c['passed']}/{c['total']} {100 * c['rate']:.0f}%" if c["total"] else "-")
        print(f"{check:<12}" + "".join(f"{cell:>20}" for cell in cells))
    print(
        f"{'overall':<12}"
        + "".join(
            f"{results[n]['passed']}/{results[n]['checks_run']} {100 * results[n]['overall']:.1f}%".rjust(20)
            for n in names
        )
    )
    for n in names:
        r = results[n]
        print(
            f"\n{n} ({r['model']}): {r['replies']} replies in {r['seconds']} s, "
            f"{r['cpu_s']} s CPU (mean {r['reply_s_mean']} s a reply, load {r['load_s']} s)"
        )
        for f in r["failures"]:
            print(f"  {f['case']}: {', '.join(f['failed'])} — {f['reply']!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", default="tiny,small", help="comma-separated tiers (default: tiny,small)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the whole set per tier")
    parser.add_argument("--prompts", default=str(PROMPTS), help="the prompt set (TOML)")
    # Replies do not depend on the thread count. Beside other work on 2 cores, llama.cpp's
    # 2 threads spin-wait for each other and the tiny model ran ~20x slower; 1 does not.
    parser.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: llm.threads); 1 where other work runs"
    )
    parser.add_argument("--show", action="store_true", help="print every reply to stderr as it comes")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")

    eval_set = load_eval_set(args.prompts)
    names = [n.strip() for n in args.llm.split(",") if n.strip()]
    unknown = [n for n in names if n not in tiers.TIERS]
    if unknown:
        print(f"unknown tier(s) {', '.join(unknown)}; known: {', '.join(tiers.TIERS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = {name: evaluate_tier(name, eval_set, args.repeat, args.show, args.threads) for name in names}
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "cases": len(eval_set.cases),
        "repeat": args.repeat,
        "threads": args.threads or Settings().llm.threads,
        "wall_s": round(time.perf_counter() - started, 1),
        "tiers": results,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(f"{report['machine']}, {report['date']}: {report['cases']} prompts × {args.repeat}\n")
        print_table(results)
        print(f"\ntotal {report['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
