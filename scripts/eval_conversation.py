#!/usr/bin/env python3
"""Conversation quality per LLM tier, with automatic checks and no judge model.

    python scripts/eval_conversation.py [--llm tiny,small] [--repeat N] [--json] [--show]

Runs the fixed prompt set in scripts/eval_prompts.toml (comfort, small talk, recall of
facts from the profile, a fact told earlier in the same conversation, Chinese, French
practice and corrections, a topic change, a distressing message, a roleplay card with
narration, language switches) through each tier as the companion really answers: the
persona's own system prompt (Mia, 小雨 or the set's card), the prompt built by the
memory (MemoryConversation: profile, recent turns, recall, the language hint), the
tier's sampling, and what the listener hears (help-desk closers and the wrap-up cut
by conversation/reply_length.py, stage directions dropped by narration.py). Then
voice_companion/companion/eval_checks.py checks every reply. Prints the pass rate per
check, per language and overall for each tier; `--json` prints one object on stdout.
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
import shutil
import sys
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_companion.companion.cards import from_card  # noqa: E402
from voice_companion.companion.eval_checks import CHECKS, Case, load_eval_set, run_checks  # noqa: E402
from voice_companion.companion.memory import context  # noqa: E402
from voice_companion.companion.memory.conversation import MemoryConversation  # noqa: E402
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore  # noqa: E402
from voice_companion.companion.persona import Persona, load_toml  # noqa: E402
from voice_companion.conversation.narration import speakable  # noqa: E402
from voice_companion.conversation.reply_length import HELP_DESK, shaped  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.core.errors import CompanionError  # noqa: E402
from voice_companion.core.language import guess_language  # noqa: E402
from voice_companion.core.prompts import persona_base  # noqa: E402
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


PERSONAS = ROOT / "voice_companion" / "companion" / "personas"
BUNDLED = {"mia": "mia.toml", "xiaoyu": "xiaoyu.toml"}


def persona_for(name: str, eval_set) -> Persona:
    if name in eval_set.cards:
        return from_card(eval_set.cards[name], f"{name} (eval card)")
    return load_toml(PERSONAS / BUNDLED[name])


def example_lines(persona: Persona) -> tuple[str, ...]:
    """What the persona says in its example dialogue (never to be said again verbatim)."""
    lines = []
    for line in persona.example_dialogue.splitlines():
        speaker, _, said = line.partition(":")
        if said.strip() and speaker.strip() not in ("User", "{{user}}", "<USER>"):
            lines.append(said.strip())
    return tuple(lines)


def messages_for(case: Case, persona: Persona, facts, budget: context.Budget, folder: Path) -> list[ChatMessage]:
    """The prompt the companion's memory builds: its persona, the profile, the case's
    earlier turns (this session), recall and the language hint for the message."""
    store = SQLiteMemoryStore(folder / f"{case.id}.db")
    for fact in facts:
        store.add_memory("fact", fact, 0.7)
    conversation = MemoryConversation(store, persona.system_prompt(persona_base(persona.language)), budget)
    conversation.language = persona.language
    for user, companion in zip(case.history[::2], case.history[1::2], strict=False):
        conversation.record(user, companion)
    messages = conversation.prompt_for(case.user, guess_language(case.user))
    conversation.close()
    store.close()
    return messages


async def reply_to(llm, messages: list[ChatMessage], options) -> tuple[str, str]:
    """(what the model wrote before the companion stopped it, what the companion said)."""
    written: list[str] = []

    async def noted(deltas):
        async for delta in deltas:
            written.append(delta)
            yield delta

    options = options.for_prompt(messages)  # as the companion samples it
    async with aclosing(llm.stream(messages, options)) as deltas:
        said = "".join([delta async for delta in shaped(noted(deltas), options.wrap_up_words)]).strip()
    return "".join(written).strip(), said


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
    budget = context.Budget.for_context(
        tiers.context_tokens(settings, choice), options.max_tokens, tiers.recall_cap(choice)
    )
    counts = {check: [0, 0] for check in CHECKS}  # passed, applicable
    by_language: dict[str, list[int]] = {}  # language -> [passed, applicable]
    by_kind: dict[str, list[int]] = {}  # kind -> ["expected" passed, applicable]
    help_desk_written = 0  # replies in which the model began a help-desk phrase
    failures, reply_s = [], []
    folder = Path(tempfile.mkdtemp(prefix="eval-conversation-"))
    cpu_started = time.process_time()  # llama.cpp's threads included; unlike wall time, not
    # inflated when other work on the machine pauses or slows this process
    try:
        for _ in range(repeat):
            for case in eval_set.cases:
                persona = persona_for(case.persona, eval_set)
                case = dataclasses.replace(case, examples=example_lines(persona))
                messages = messages_for(case, persona, eval_set.facts, budget, folder)
                t0 = time.perf_counter()
                written, said = asyncio.run(reply_to(llm, messages, options))
                reply_s.append(time.perf_counter() - t0)
                help_desk_written += HELP_DESK.search(written) is not None
                reply = speakable(said, persona.quotes_dialogue)  # what the listener hears
                results = run_checks(reply, case)
                for check, ok in results.items():
                    counts[check][0] += ok
                    counts[check][1] += 1
                    language = by_language.setdefault(case.lang, [0, 0])
                    language[0] += ok
                    language[1] += 1
                if "expected" in results:
                    kind = by_kind.setdefault(case.kind, [0, 0])
                    kind[0] += results["expected"]
                    kind[1] += 1
                failed = [check for check, ok in results.items() if not ok]
                if failed:
                    failures.append({"case": case.id, "failed": failed, "reply": reply, "written": written})
                if show:
                    mark = "ok  " if not failed else "FAIL"
                    print(f"[{name}] {mark} {case.id}: {reply!r} {failed or ''}", file=sys.stderr)
    finally:
        llm.close()
        shutil.rmtree(folder, ignore_errors=True)
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
        "languages": {lang: round(p / n, 3) for lang, (p, n) in sorted(by_language.items()) if n},
        "expected_by_kind": {k: f"{p}/{n}" for k, (p, n) in sorted(by_kind.items())},
        "help_desk_written": f"{help_desk_written}/{len(reply_s)}",
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
        languages = ", ".join(f"{lang} {100 * rate:.0f}%" for lang, rate in r["languages"].items())
        kinds = ", ".join(f"{k} {v}" for k, v in r["expected_by_kind"].items())
        print(f"\n{n}: by language {languages}; expected words by kind: {kinds}")
        print(f"{n}: help-desk phrase begun by the model in {r['help_desk_written']} replies (cut before it was said)")
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
