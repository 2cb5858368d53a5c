"""Echo cancellation on the companion's real voice through simulated rooms."""

from __future__ import annotations

import numpy as np
import pytest

from voice_companion.conversation.session import SessionSettings
from voice_companion.conversation.vad import SpeechDetector
from voice_companion.core.audio import resample
from voice_companion.transports.desk.echo import EchoCanceller
from voice_companion.transports.desk.virtual import EchoPath

BARGE_IN = SessionSettings().barge_in_vad  # what listens while the companion talks

ROOMS = [
    EchoPath(delay_ms=40, gain=0.5),
    EchoPath(delay_ms=120, gain=0.6, rt60_s=0.4),
    EchoPath(delay_ms=60, gain=0.25, rt60_s=0.0),
]


@pytest.fixture(scope="module")
def reply16k(tts):
    text = (
        "Once upon a time a little dragon lived on a hill covered in tea bushes, and every "
        "morning she made tea for the children of the village."
    )
    return resample(tts.synthesize_all(text).astype(np.float32) / 32768, tts.sample_rate, 16000)


def cancel(mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
    canceller, block = EchoCanceller(), 320
    return np.concatenate(
        [
            canceller.process(mic[i : i + block], reference[i : i + block])
            for i in range(0, len(mic) // block * block, block)
        ]
    )


@pytest.mark.parametrize("room", ROOMS, ids=["40ms", "120ms-reverb", "60ms-dry"])
def test_echo_is_removed_and_never_starts_speech(room, reply16k):
    mic = room.apply(reply16k)
    cleaned = cancel(mic, reply16k)
    settled = slice(16000, len(cleaned))
    erle = 10 * np.log10(np.mean(mic[settled] ** 2) / np.mean(cleaned[settled] ** 2))
    assert erle > 15, erle
    raw, after = SpeechDetector(BARGE_IN), SpeechDetector(BARGE_IN)
    raw.push(mic)
    after.push(cleaned[16000:])
    assert raw.in_speech and not after.in_speech


def test_user_speech_survives_cancellation(reply16k, tts):
    user = resample(tts.synthesize_all("Wait, stop, please.").astype(np.float32) / 32768, tts.sample_rate, 16000)
    mic = EchoPath(delay_ms=60, gain=0.4).apply(reply16k)
    at = 2 * 16000
    mic[at : at + len(user)] += user[: len(mic) - at]
    detector = SpeechDetector(BARGE_IN)
    detector.push(cancel(mic, reply16k)[at - 8000 :])
    assert detector.in_speech
