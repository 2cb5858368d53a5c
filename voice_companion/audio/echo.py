"""Acoustic echo cancellation: remove the companion's own voice from the microphone.

On plain laptop speakers the microphone hears the reply; without this the
companion would take its own voice for the user and interrupt itself. Chosen by
`scripts/eval_echo.py` (numbers in docs/benchmarks.md):

- WebRTC's audio processing module (`aec-audio-processing`, BSD-3-Clause): ~41 dB
  of echo reduction, no echo frame left that webrtcvad calls speech. Best, but
  PyPI has only its source: installing compiles WebRTC (minutes, needs g++), so
  it is the optional extra `voice-companion[webrtc-aec]` and used when present.
- SpeexDSP's canceller (`pyaec`, a prebuilt wheel): ~23 dB, 1–2 % of echo frames
  still called speech — too few to start a barge-in, which needs 3 voiced frames
  in 300 ms; the session's transcript check catches the rest. The default.
"""

from __future__ import annotations

import numpy as np

FRAME = 160  # both work on 10 ms frames at 16 kHz
SPEEX_TAIL_MS = 250  # echo tail the Speex filter models (room reverberation)


def _webrtc_apm():
    from aec_audio_processing import AudioProcessor

    ap = AudioProcessor(enable_aec=True, enable_ns=True, ns_level=1, enable_agc=False, enable_vad=False)
    ap.set_stream_format(16000, 1, 16000, 1)
    ap.set_reverse_stream_format(16000, 1)
    ap.set_stream_delay(0)

    def process(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        ap.process_reverse_stream(ref.tobytes())
        return np.frombuffer(ap.process_stream(mic.tobytes()), dtype=np.int16)

    return process


def _speex():
    from pyaec import Aec

    aec = Aec(FRAME, 16000 * SPEEX_TAIL_MS // 1000, 16000, True)
    return lambda mic, ref: np.asarray(aec.cancel_echo(mic, ref), dtype=np.int16)


class EchoCanceller:
    """Feed microphone and speaker (reference) audio at 16 kHz, block by block."""

    def __init__(self, engine: str = "auto") -> None:
        self.engine, self._process = _choose(engine)
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


def _choose(engine: str):
    if engine in ("auto", "webrtc"):
        try:
            return "webrtc", _webrtc_apm()
        except ImportError:
            if engine == "webrtc":
                raise
    return "speex", _speex()


def _int16(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.int16:
        return x
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
