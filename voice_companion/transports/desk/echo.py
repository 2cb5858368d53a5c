"""Acoustic echo cancellation: remove the companion's own voice from the microphone.

On plain laptop speakers the microphone hears the reply; without this the
companion would take its own voice for the user and interrupt itself. Chosen by
measurement (scripts/eval_echo.py, docs/benchmarks.md): WebRTC's AEC3, the
canceller in Chrome, from `pywebrtc-audio` (Apache-2.0, a prebuilt wheel): ~31 dB
of echo reduction (~41 dB with noise suppression), no false barge-in in any
simulated room, echo delays of 0-500 ms found by itself. The SpeexDSP packages
reached 16-25 dB and left enough echo for 60-215 false barge-ins in the same
runs; `aec-audio-processing` has the same AEC3 but compiles from source for
minutes, so it is only a fallback when installed.

Feed the reference no later than its echo reaches the microphone: AEC3 cannot
cancel an echo that arrives before its reference.
"""

from __future__ import annotations

import numpy as np

FRAME = 160  # AEC3 works on 10 ms frames at 16 kHz


def _pywebrtc(noise_suppression: bool):
    import pywebrtc_audio

    ap = pywebrtc_audio.AudioProcessor(16000, echo_cancellation=True, noise_suppression=noise_suppression, ns_level=1)
    return lambda mic, ref: np.asarray(ap.process(np.ascontiguousarray(mic), np.ascontiguousarray(ref)), dtype=np.int16)


def _aec_audio_processing(noise_suppression: bool):
    from aec_audio_processing import AudioProcessor

    ap = AudioProcessor(enable_aec=True, enable_ns=noise_suppression, ns_level=1, enable_agc=False, enable_vad=False)
    ap.set_stream_format(16000, 1, 16000, 1)
    ap.set_reverse_stream_format(16000, 1)
    ap.set_stream_delay(0)

    def process(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        ap.process_reverse_stream(ref.tobytes())
        return np.frombuffer(ap.process_stream(mic.tobytes()), dtype=np.int16)

    return process


class EchoCanceller:
    """Feed microphone and speaker (reference) audio at 16 kHz, block by block."""

    def __init__(self, noise_suppression: bool = True) -> None:
        try:
            self.engine, self._process = "pywebrtc-audio", _pywebrtc(noise_suppression)
        except ImportError:
            self.engine, self._process = "aec-audio-processing", _aec_audio_processing(noise_suppression)
        self._mic = np.zeros(0, dtype=np.int16)
        self._ref = np.zeros(0, dtype=np.int16)

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Cleaned microphone audio (float32), as long as `mic`."""
        self._mic = np.concatenate([self._mic, _int16(mic)])
        self._ref = np.concatenate([self._ref, _int16(reference)])
        out = []
        while len(self._mic) >= FRAME and len(self._ref) >= FRAME:
            out.append(self._process(self._mic[:FRAME], self._ref[:FRAME]))
            self._mic, self._ref = self._mic[FRAME:], self._ref[FRAME:]
        cleaned = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
        if len(cleaned) < len(mic):  # uneven blocks: the remainder comes out next time
            cleaned = np.concatenate([np.zeros(len(mic) - len(cleaned), np.int16), cleaned])
        return cleaned[: len(mic)].astype(np.float32) / 32768


def _int16(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.int16:
        return x
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
