#!/usr/bin/env python3
"""Voice-to-voice latency of the live engine vs a naive sequential pipeline, same inputs.

    python scripts/bench_latency.py [--questions N] [--json]

Ours: spoken questions go through the real session at real-time pace on a virtual
sound card (VAD, adaptive endpointing, speculative STT + reply, clause streaming);
voice-to-voice is the time from the end of the user's speech to the first reply
sample leaving the speaker. Naive: fixed 700 ms of silence, then the whole
transcript (faster-whisper defaults: 30 s window, beam 5), the whole reply, the
whole synthesis — the sum of those stages. `--json` prints one object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

from voice_companion.companion.companion import open_companion  # noqa: E402
from voice_companion.conversation.file_reply import collect_reply  # noqa: E402
from voice_companion.conversation.history import Conversation  # noqa: E402
from voice_companion.conversation.session import (  # noqa: E402
    Session,
    SessionSettings,
    session_settings,  # noqa: E402
)
from voice_companion.core.audio import resample  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.core.events import TurnMetrics  # noqa: E402
from voice_companion.engines.llm import GenerationOptions  # noqa: E402
from voice_companion.engines.loader import (  # noqa: E402
    generation_options,
    load_llm,
    load_stt,
    load_tts,
    voice_path,
)
from voice_companion.engines.models.tiers import TIERS  # noqa: E402
from voice_companion.engines.tts import PiperTTS, VoiceSettings  # noqa: E402
from voice_companion.transports.desk.virtual import VirtualAudioDevice  # noqa: E402

QUESTIONS = [
    "Hi Mia, how was your day?",
    "I had a rough day at work, my boss yelled at me.",
    "What is a good way to relax before going to sleep?",
    "Can you help me practise a little French tonight?",
    "My exam is on Friday and I am nervous about it.",
    "Do you remember the name of my cat?",
    "Tell me something that will make me smile.",
    "What should I cook for dinner tonight?",
    "I think I will go for a walk in the park.",
    "Thank you for listening to me today.",
    "What is your favourite season of the year?",
    "Should I call my sister this weekend?",
]
# From one question's start to the next: room for the whole spoken reply, so every
# turn is a fresh turn and not a barge-in (28 tokens: 5.3-7.1 s of speech from the tiny
# brain as measured 2026-11-27, up to ~8 s from the 1.5B one). With 9 s, 5 of 12 tiny
# turns began while the last reply still played: barge-ins, not speculative hits.
GAP_S = {"tiny": 12.0}
DEFAULT_GAP_S = 15.0
NAIVE_SILENCE_MS = 700.0


def spoken(settings: Settings) -> list[np.ndarray]:
    voice = PiperTTS(voice_path(settings), VoiceSettings(noise_scale=0, noise_w=0))
    return [resample(voice.synthesize_all(q).astype(np.float32) / 32768, voice.sample_rate, 16000) for q in QUESTIONS]


def fresh_companion_system(settings: Settings) -> str:
    """The system message a new user's companion sends: the default persona, an empty memory
    (what production sends, through the same code; not a bare prompt of the benchmark's own)."""
    with tempfile.TemporaryDirectory() as folder:
        fresh = replace(settings, paths=replace(settings.paths, data_dir=Path(folder)))
        companion = open_companion(fresh)
        try:
            return companion.conversation(fresh, keep=False).system_message()
        finally:
            companion.store.close()


def run_ours(
    stt, llm, tts, clips, system: str, options: GenerationOptions, live: SessionSettings, gap_s: float
) -> list[TurnMetrics]:
    device = VirtualAudioDevice(tts.sample_rate, duration_s=1.0 + gap_s * len(clips) + 2)
    for i, clip in enumerate(clips):
        device.say(1.0 + i * gap_s, clip)
    session = Session(stt, llm, tts, device, Conversation(system), options, live)
    asyncio.run(session.run())
    return [m for m in device.of_type(TurnMetrics) if m.voice_to_voice_ms is not None]


def run_naive(stt, llm, tts, clips, system: str, options: GenerationOptions) -> list[dict]:
    rows = []
    margin, beam = stt.window_margin_s, stt.beam_size
    stt.window_margin_s, stt.beam_size = None, 5  # faster-whisper's own loop and defaults
    try:
        for clip in clips:
            transcript = stt.transcribe(clip)
            start = time.perf_counter()
            conversation = Conversation(system)
            reply = asyncio.run(collect_reply(llm, conversation.prompt_for(transcript.text), options))
            llm_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            tts.synthesize_all(reply)
            tts_ms = (time.perf_counter() - start) * 1000
            rows.append(
                {
                    "stt_ms": transcript.stt_ms,
                    "llm_ms": llm_ms,
                    "tts_ms": tts_ms,
                    "v2v_ms": NAIVE_SILENCE_MS + transcript.stt_ms + llm_ms + tts_ms,
                }
            )
    finally:
        stt.window_margin_s, stt.beam_size = margin, beam
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--llm",
        default="tiny",
        choices=list(TIERS),
        help="LLM tier (default tiny: the tier docs/benchmarks.md reports)",
    )
    parser.add_argument("--first-clause-words", type=int, help="override the tier's first clause cut")
    parser.add_argument(
        "--prefill-while-speaking", type=int, metavar="MS", help="override the tier's listen-ahead interval (0: off)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline (quick A/B runs)")
    args = parser.parse_args()
    settings = Settings()
    settings.llm.tier = args.llm
    live = session_settings(settings)
    if args.first_clause_words is not None:
        live = replace(live, first_clause_max_words=args.first_clause_words)
    if args.prefill_while_speaking is not None:
        live = replace(live, prefill_while_speaking_ms=args.prefill_while_speaking)
    stt, llm, tts = load_stt(settings), load_llm(settings), load_tts(settings)
    clips = spoken(settings)[: args.questions]
    system = fresh_companion_system(settings)
    options = GenerationOptions(**{**generation_options(settings).__dict__, "max_tokens": 28})
    ours = run_ours(stt, llm, tts, clips, system, options, live, GAP_S.get(args.llm, DEFAULT_GAP_S))
    naive = [] if args.no_naive else run_naive(stt, llm, tts, clips, system, options)
    stage = lambda name: summary([getattr(m, name) for m in ours if getattr(m, name) is not None])  # noqa: E731
    v2v = [m.voice_to_voice_ms for m in ours]
    naive_v2v = [r["v2v_ms"] for r in naive]
    pct = lambda values, q: round(float(np.percentile(values, q)), 1) if values else None  # noqa: E731
    result = {
        "machine": machine(),
        "llm": args.llm,
        "live_tuning": {
            "first_clause_max_words": live.first_clause_max_words,
            "prefill_while_speaking_ms": live.prefill_while_speaking_ms,
        },
        "turns": len(ours),
        "questions": len(clips),
        "v2v_p50_ms": round(float(np.percentile(v2v, 50)), 1) if v2v else None,
        "v2v_p95_ms": round(float(np.percentile(v2v, 95)), 1) if v2v else None,
        "first_turn_v2v_ms": round(v2v[0], 1) if v2v else None,
        "naive_v2v_p50_ms": pct(naive_v2v, 50),
        "naive_v2v_p95_ms": pct(naive_v2v, 95),
        "speedup": round(float(np.percentile(naive_v2v, 50) / np.percentile(v2v, 50)), 2)
        if v2v and naive_v2v
        else None,
        "speculative_hits": sum(m.speculative_hit for m in ours),
        "stages_ms": {
            name: stage(name)
            for name in ("endpoint_delay_ms", "stt_ms", "llm_first_token_ms", "first_clause_ms", "tts_first_audio_ms")
        },
        "naive_stages_ms": {k: summary([r[k] for r in naive]) for k in ("stt_ms", "llm_ms", "tts_ms")}
        if naive
        else None,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
