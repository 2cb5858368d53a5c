#!/usr/bin/env python3
"""Which echo canceller keeps the companion from hearing itself? Measured, not guessed.

    pip install aec-audio-processing pyaec   # the other candidates (pywebrtc-audio is a dependency)
    python scripts/eval_echo.py [--json]

The companion's voice (Piper) plays through a simulated room (delay, attenuation,
reverberation) into the microphone; in a second case the user talks over it.
For each canceller: echo reduction (ERLE, dB) once converged, the share of 30 ms
frames webrtcvad still calls speech during echo only (false barge-ins), the share
of the user's speech frames it still hears during double talk, and CPU per 10 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_companion.conversation.vad import SpeechDetector  # noqa: E402
from voice_companion.core.audio import resample  # noqa: E402
from voice_companion.core.config import Settings  # noqa: E402
from voice_companion.engines.loader import voice_path  # noqa: E402
from voice_companion.engines.tts import PiperTTS, VoiceSettings  # noqa: E402
from voice_companion.transports.desk.virtual import EchoPath  # noqa: E402

REPLY = (
    "Once upon a time, a little dragon lived on a hill covered in tea bushes. Every "
    "morning she brewed a pot of jasmine tea and shared it with the village children."
)
USER = "Wait, stop, can we talk about something else?"
FRAME = 160  # 10 ms at 16 kHz


class NoCanceller:
    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return mic


class PyWebRtc:
    """pywebrtc-audio: WebRTC AEC3 as a prebuilt wheel (Apache-2.0) — what we ship."""

    def __init__(self) -> None:
        from voice_companion.transports.desk.echo import EchoCanceller

        self.canceller = EchoCanceller()

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return to_int16(self.canceller.process(mic, ref))


class WebRtcApm:
    """aec-audio-processing: WebRTC's audio processing module (BSD-3-Clause)."""

    def __init__(self) -> None:
        from aec_audio_processing import AudioProcessor

        self.ap = AudioProcessor(enable_aec=True, enable_ns=True, ns_level=1, enable_agc=False, enable_vad=False)
        self.ap.set_stream_format(16000, 1, 16000, 1)
        self.ap.set_reverse_stream_format(16000, 1)
        self.ap.set_stream_delay(0)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        self.ap.process_reverse_stream(ref.tobytes())
        return np.frombuffer(self.ap.process_stream(mic.tobytes()), dtype=np.int16)


class SpeexAec:
    """pyaec: SpeexDSP's echo canceller (MDF) via ctypes."""

    def __init__(self) -> None:
        from pyaec import Aec

        self.aec = Aec(FRAME, 16000 * 250 // 1000, 16000, True)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return np.asarray(self.aec.cancel_echo(mic, ref), dtype=np.int16)


def to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def signals() -> tuple[np.ndarray, np.ndarray]:
    tts = PiperTTS(voice_path(Settings()), VoiceSettings(noise_scale=0, noise_w=0))
    reply = resample(tts.synthesize_all(REPLY).astype(np.float32) / 32768, tts.sample_rate, 16000)
    user = resample(tts.synthesize_all(USER).astype(np.float32) / 32768, tts.sample_rate, 16000)
    return reply, user


def run(canceller, reference: np.ndarray, mic: np.ndarray) -> tuple[np.ndarray, float]:
    out, spent = [], 0.0
    n = len(mic) // FRAME * FRAME
    for i in range(0, n, FRAME):
        start = time.perf_counter()
        out.append(canceller.process(to_int16(mic[i : i + FRAME]), to_int16(reference[i : i + FRAME])))
        spent += time.perf_counter() - start
    return np.concatenate(out).astype(np.float32) / 32768, 1000 * spent / (n // FRAME)


def speech_frames(audio: np.ndarray) -> np.ndarray:
    return np.array([f.is_speech for f in SpeechDetector().push(audio)])


def evaluate(name: str, make, reply: np.ndarray, user: np.ndarray, delay_ms: float, gain: float) -> dict:
    echo = EchoPath(delay_ms=delay_ms, gain=gain).apply(reply)
    noise = np.random.default_rng(1).normal(0, 3e-4, len(reply)).astype(np.float32)
    mic_echo = echo + noise
    cleaned, cpu = run(make(), reply, mic_echo)
    settle = 16000  # let adaptive filters converge for 1 s
    erle = 10 * np.log10(np.mean(mic_echo[settle : len(cleaned)] ** 2) / max(np.mean(cleaned[settle:] ** 2), 1e-12))
    false_speech = speech_frames(cleaned[settle:]).mean()
    at = int(2.5 * 16000)
    mic_talk = mic_echo.copy()
    mic_talk[at : at + len(user)] += user[: len(mic_talk) - at]
    cleaned_talk, _ = run(make(), reply, mic_talk)
    user_voiced = speech_frames(np.pad(user, (0, 480)))
    heard = speech_frames(cleaned_talk[at : at + len(user) + 480])[: len(user_voiced)]
    kept = heard[user_voiced[: len(heard)]].mean() if user_voiced.any() else float("nan")
    return {
        "canceller": name,
        "delay_ms": delay_ms,
        "gain": gain,
        "erle_db": round(float(erle), 1),
        "echo_frames_called_speech": round(float(false_speech), 3),
        "user_frames_still_heard": round(float(kept), 3),
        "cpu_ms_per_10ms": round(cpu, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reply, user = signals()
    candidates = {
        "none": NoCanceller,
        "pywebrtc-audio (AEC3)": PyWebRtc,
        "aec-audio-processing (AEC3)": WebRtcApm,
        "pyaec (Speex)": SpeexAec,
    }
    rows = []
    for name, make in candidates.items():
        try:
            make()
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        for delay_ms, gain in ((40, 0.5), (120, 0.25)):
            rows.append(evaluate(name, make, reply, user, delay_ms, gain))
            if not args.json:
                print(rows[-1], flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
