"""Acoustic echo cancellation: remove the companion's own voice from the microphone.

On plain laptop speakers the microphone hears the reply; without this the
companion would take its own voice for the user and interrupt itself. We use
WebRTC's audio processing module (PyPI `aec-audio-processing`, BSD-3-Clause),
chosen by `scripts/eval_echo.py` (docs/benchmarks.md): ~41 dB of echo reduction
and no echo frame left that webrtcvad calls speech, where SpeexDSP (`pyaec`)
reached ~23 dB and 1–2 % false speech frames; ~0.13 ms CPU per 10 ms.
"""

from __future__ import annotations

import numpy as np

FRAME = 160  # the module works on 10 ms frames at 16 kHz


class EchoCanceller:
    """Feed microphone and speaker (reference) audio of equal length at 16 kHz."""

    def __init__(self, noise_suppression: bool = True) -> None:
        from aec_audio_processing import AudioProcessor

        self._ap = AudioProcessor(
            enable_aec=True, enable_ns=noise_suppression, ns_level=1, enable_agc=False, enable_vad=False
        )
        self._ap.set_stream_format(16000, 1, 16000, 1)
        self._ap.set_reverse_stream_format(16000, 1)
        self._ap.set_stream_delay(0)
        self._mic = np.zeros(0, dtype=np.int16)
        self._ref = np.zeros(0, dtype=np.int16)

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Cleaned microphone audio (float32); output lags by < 10 ms when blocks are uneven."""
        self._mic = np.concatenate([self._mic, _int16(mic)])
        self._ref = np.concatenate([self._ref, _int16(reference)])
        out = []
        while len(self._mic) >= FRAME and len(self._ref) >= FRAME:
            self._ap.process_reverse_stream(self._ref[:FRAME].tobytes())
            out.append(np.frombuffer(self._ap.process_stream(self._mic[:FRAME].tobytes()), dtype=np.int16))
            self._mic, self._ref = self._mic[FRAME:], self._ref[FRAME:]
        cleaned = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
        if len(cleaned) < len(mic):  # keep block sizes stable for the caller
            cleaned = np.concatenate([np.zeros(len(mic) - len(cleaned), np.int16), cleaned])
        return cleaned[: len(mic)].astype(np.float32) / 32768


def _int16(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.int16:
        return x
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
