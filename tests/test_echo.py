"""Echo cancellation on the companion's real voice through a simulated room."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from voice_companion.audio.echo import EchoCanceller
from voice_companion.audio.io import resample
from voice_companion.audio.virtual import EchoPath
from voice_companion.pipeline.session import SessionSettings
from voice_companion.pipeline.vad import SpeechDetector

ENGINES = ["speex"] + (["webrtc"] if importlib.util.find_spec("aec_audio_processing") else [])


@pytest.fixture(scope="module")
def reply16k(tts):
    text = "Once upon a time a little dragon lived on a hill covered in tea bushes, and every morning she made tea."
    return resample(tts.synthesize_all(text).astype(np.float32) / 32768, tts.sample_rate, 16000)


def cancel(engine: str, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
    canceller = EchoCanceller(engine)
    block = 320
    return np.concatenate([canceller.process(mic[i : i + block], reference[i : i + block])
                           for i in range(0, len(mic) // block * block, block)])


@pytest.mark.parametrize("engine", ENGINES)
def test_echo_is_removed_and_never_starts_speech(engine, reply16k):
    mic = EchoPath(delay_ms=60, gain=0.4).apply(reply16k)
    cleaned = cancel(engine, mic, reply16k)
    settled = slice(16000, len(cleaned))
    erle = 10 * np.log10(np.mean(mic[settled] ** 2) / np.mean(cleaned[settled] ** 2))
    assert erle > 15, erle
    barge_in = SessionSettings().barge_in_vad  # what listens while the companion talks
    raw, after = SpeechDetector(barge_in), SpeechDetector(barge_in)
    raw.push(mic)
    after.push(cleaned[16000:])
    assert raw.in_speech and not after.in_speech


@pytest.mark.parametrize("engine", ENGINES)
def test_user_speech_survives_cancellation(engine, reply16k, tts):
    user = resample(tts.synthesize_all("Wait, stop, please.").astype(np.float32) / 32768, tts.sample_rate, 16000)
    mic = EchoPath(delay_ms=60, gain=0.4).apply(reply16k)
    at = 2 * 16000
    mic[at : at + len(user)] += user[: len(mic) - at]
    detector = SpeechDetector(SessionSettings().barge_in_vad)
    detector.push(cancel(engine, mic, reply16k)[at - 8000 :])
    assert detector.in_speech


def test_engine_choice():
    assert EchoCanceller("speex").engine == "speex"
    assert EchoCanceller().engine in ("webrtc", "speex")
