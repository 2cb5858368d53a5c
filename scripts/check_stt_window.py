#!/usr/bin/env python3
"""Does a shortened Whisper window change the words? Accuracy and time per window size.

    python scripts/check_stt_window.py [--json]

Runs the bundled Whisper base on English questions spoken by Piper, the Chinese
recordings in tests/data and French from espeak-ng (when installed), with the full
30 s window and with shorter ones, and reports word/character error rates against
the reference texts plus the p50 time of each setting.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_companion.core.audio import load_for_stt, resample  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.engines.loader import stt_model_dir, voice_path  # noqa: E402
from voice_companion.engines.stt import WhisperSTT  # noqa: E402
from voice_companion.engines.tts import PiperTTS, VoiceSettings  # noqa: E402

ENGLISH = [
    "Hi! I had a long day at work today. Can you cheer me up a little?",
    "What is a good way to relax before going to sleep?",
    "My exam is on Friday and I am nervous about it.",
    "Do you remember what I told you about my sister?",
    "Tell me a short story about a dragon who loves tea.",
    "Yes.",
    "I think I will go for a walk in the park after lunch, and then maybe read a book.",
    "Good morning, how did you sleep?",
    "My sister called me yesterday and",  # unfinished turns: short windows made Whisper loop
    "I was thinking that maybe we could",
    "I went to the market because",
]
CHINESE = {
    "zh_welcome.wav": "欢迎大家来体验达摩院推出的语音识别模型",
    "zh_news_mid.wav": "大学生利用漏洞免费吃肯德基获刑",
    "zh_news_long.wav": "富士康在印度工厂出现大规模感染目前工厂产量已下降超50%",
}
FRENCH = ["Je suis très content de te voir.", "Merci beaucoup, à demain."]
SETTINGS = {
    "full_30s": (30.0, 30.0),
    "margin_1.5s_min_10s": (1.5, 10.0),
    "margin_1.5s_min_8s": (1.5, 8.0),
    "margin_1.5s_min_5s": (1.5, 5.0),
    "margin_1s_min_3s": (1.0, 3.0),
    "margin_0.5s_min_2s": (0.5, 2.0),
}


def edit_distance(a: list, b: list) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def tokens(text: str, lang: str) -> list[str]:
    if lang == "zh":
        return list(re.sub(r"[\s，。！？、,.!?%]", "", text))
    return re.findall(r"[\w']+", text.lower())


def corpus() -> list[tuple[np.ndarray, str, str]]:
    settings = Settings()
    tts = PiperTTS(voice_path(settings), VoiceSettings(noise_scale=0, noise_w=0))
    items = [
        (resample(tts.synthesize_all(t).astype(np.float32) / 32768, tts.sample_rate, 16000), t, "en") for t in ENGLISH
    ]
    items += [(load_for_stt(ROOT / "tests" / "data" / n), ref, "zh") for n, ref in CHINESE.items()]
    if shutil.which("espeak-ng"):
        for text in FRENCH:
            with tempfile.NamedTemporaryFile(suffix=".wav") as f:
                subprocess.run(["espeak-ng", "-v", "fr", "-s", "140", "-w", f.name, text], check=True)
                items.append((load_for_stt(f.name), text, "fr"))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items = corpus()
    stt = WhisperSTT(stt_model_dir(Settings()))
    report = {}
    for label, (margin, minimum) in SETTINGS.items():
        stt.window_margin_s, stt.min_window_s = margin, minimum
        errors = total = 0
        times, wrong_lang = [], 0
        for audio, ref, lang in items:
            r = stt.transcribe(audio)
            wrong_lang += r.language != lang
            ref_t, hyp_t = tokens(ref, lang), tokens(r.text, lang)
            errors += edit_distance(ref_t, hyp_t)
            total += len(ref_t)
            times.append(r.stt_ms)
        report[label] = {
            "error_rate": round(errors / total, 4),
            "wrong_language": wrong_lang,
            "utterances": len(items),
            "p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1),
        }
        if not args.json:
            print(label, report[label], flush=True)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
