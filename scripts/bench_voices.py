#!/usr/bin/env python3
"""The installed voices, heard back: each speaks 20 everyday companion sentences of its
language, the bundled Whisper base transcribes them, and the error rate, the first
clause's latency and the real-time factor are reported (p50/p95), with the bundled Piper
voice (en_US-joe-medium) measured in the same run as the baseline.

    python scripts/bench_voices.py [--voices ID,ID] [--json]

Default voices: every voice the install brings (engines/voices/offline.py) that is here,
and joe. English and French: word error rate; Chinese: character error rate (punctuation
ignored). The first clause is the sentence up to its first comma or full stop, timed to
the first audio chunk after one warm-up (issue 18's 250 ms target).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_engines import machine, summary  # noqa: E402

from voice_companion.core.audio import load_for_stt, write_wav  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.core.text import edit_distance  # noqa: E402
from voice_companion.engines.loader import load_stt  # noqa: E402
from voice_companion.engines.voices import offline  # noqa: E402
from voice_companion.engines.voices.pool import VoicePool  # noqa: E402
from voice_companion.engines.voices.router import family_of  # noqa: E402

SENTENCES = ROOT / "scripts" / "research" / "voice_roundtrip"
BASELINE = "en_US-joe-medium"
_CLAUSE_END = re.compile(r"[,.!?;:，。！？；：]")


def first_clause(sentence: str) -> str:
    end = _CLAUSE_END.search(sentence)
    return sentence[: end.end()] if end else sentence


def edit_rate(heard: list[list[str]], said: list[list[str]]) -> float:
    """Levenshtein distance over the units of all sentences / the reference's units."""
    distance = sum(edit_distance(r, h) for h, r in zip(heard, said, strict=True))
    return distance / max(sum(len(r) for r in said), 1)


def units(text: str, family: str) -> list[str]:
    if family == "zh":
        return [c for c in text if "\u4e00" <= c <= "\u9fff"]
    return re.findall(r"[\w']+", text.lower())


def measure(voice_id: str, pool: VoicePool, stt, folder: Path) -> dict:
    family = family_of(voice_id)
    sentences = [s for s in (SENTENCES / f"sentences_{family}.txt").read_text(encoding="utf-8").splitlines() if s]
    load_start = time.perf_counter()
    voice = pool.get(voice_id)
    load_s = time.perf_counter() - load_start
    voice.synthesize_all(first_clause(sentences[0]))  # warm-up
    heard, rtf, clause_ms = [], [], []
    for n, sentence in enumerate(sentences):
        start = time.perf_counter()
        next(iter(voice.synthesize(first_clause(sentence))), None)
        clause_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        audio = voice.synthesize_all(sentence)
        rtf.append((time.perf_counter() - start) / max(len(audio) / voice.sample_rate, 1e-3))
        wav = write_wav(folder / f"{voice_id}-{n}.wav", audio, voice.sample_rate)
        heard.append(stt.transcribe(load_for_stt(wav), family).text)
    rate = edit_rate([units(h, family) for h in heard], [units(s, family) for s in sentences])
    return {
        "voice": voice_id,
        "language": family,
        "metric": "cer" if family == "zh" else "wer",
        "error_rate": round(rate, 3),
        "first_clause_ms": summary(clause_ms),
        "rtf": summary(rtf),
        "load_s": round(load_s, 2),
        "sample_rate": voice.sample_rate,
        "misheard": [
            {"said": s, "heard": h}
            for h, s in zip(heard, sentences, strict=True)
            if units(h, family) != units(s, family)
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", help="comma list of voice ids (default: the offline voices here, and joe)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    wanted = args.voices.split(",") if args.voices else [BASELINE, *offline.VOICES]
    here = [
        v for v in wanted if offline.find(v) is None or offline.installed(offline.VOICES[v], settings.paths.models_dir)
    ]
    pool, stt = VoicePool(settings.paths.models_dir, capacity=len(here)), load_stt(settings)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(v, pool, stt, Path(folder)) for v in here]
    result = {"machine": machine(), "voices": rows}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"machine: {result['machine']}")
    print(f"{'voice':<28} {'lang':<4} {'error':>7} {'first clause p50/p95':>22} {'RTF p50':>8}")
    for r in rows:
        fc = r["first_clause_ms"]
        print(
            f"{r['voice']:<28} {r['language']:<4} {r['metric']} {r['error_rate']:.3f} "
            f"{fc['p50']:>9.0f} / {fc['p95']:.0f} ms {r['rtf']['p50']:>8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
