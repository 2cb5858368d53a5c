"""Streaming speech detection on 16 kHz mono audio: webrtcvad plus an energy gate.

webrtcvad decides per 30 ms frame, but one voiced frame is not speech (a click,
a cough, a door), so speech starts only once `start_ms` of the last `window_ms`
were voiced, and the start is back-dated to the first of those frames so that
the caller's pre-roll can keep the first syllable. webrtcvad is nearly level
independent and happily flags faint steady noise, so frames quieter than
`min_energy_dbfs` are never speech.

The detector does not decide when a turn ends: that depends on what was said
(see endpointing.py). It only reports how long the silence has lasted, and the
caller closes the turn with `end_speech()`.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np
import webrtcvad

from voice_companion.core.audio import to_int16
from voice_companion.core.config import VadSettings

FRAME_MS = 30  # webrtcvad accepts 10, 20 or 30 ms; 30 ms is the most reliable and the cheapest
_SAMPLE_RATES = (8000, 16000, 32000, 48000)  # what webrtcvad supports
_FLOOR_DBFS = -120.0  # reported energy of digital silence (instead of -inf)


@dataclass(frozen=True)
class VadFrame:
    """One 30 ms frame's verdict."""

    t_ms: float  # stream time at the END of this frame (ms since start or reset)
    is_speech: bool  # raw per-frame decision, after the energy gate
    energy_dbfs: float  # RMS level relative to int16 full scale


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (full-scale square wave = 0 dBFS)."""
    mean_square = float(np.mean(np.square(frame, dtype=np.float64)))
    if mean_square <= 0.0:
        return _FLOOR_DBFS
    return max(_FLOOR_DBFS, 10.0 * math.log10(mean_square) - 20.0 * math.log10(32768.0))


class SpeechDetector:
    """Feed audio of any block size with `push`; read the speech state between pushes.

    Frame boundaries depend only on the total number of samples pushed, so the
    result does not depend on how the stream was cut into blocks.
    """

    def __init__(self, settings: VadSettings | None = None, sample_rate: int = 16000) -> None:
        if sample_rate not in _SAMPLE_RATES:
            raise ValueError(f"webrtcvad needs one of {_SAMPLE_RATES} Hz, got {sample_rate}")
        self.settings = settings or VadSettings()
        self.sample_rate = sample_rate
        self.frame_len = sample_rate * FRAME_MS // 1000
        self._start_frames = max(1, math.ceil(self.settings.start_ms / FRAME_MS))
        window_frames = max(self._start_frames, math.ceil(self.settings.window_ms / FRAME_MS))
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self._recent: collections.deque[VadFrame] = collections.deque(maxlen=window_frames)
        self.reset()

    def reset(self) -> None:
        """Forget everything, including the clock: the next frame ends at 30 ms."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._recent.clear()
        self._t_ms = 0.0
        self._in_speech = False
        self._started_at: float | None = None
        self._last_voiced_ms: float | None = None

    def push(self, samples: np.ndarray) -> list[VadFrame]:
        """Feed float32 [-1, 1] or int16 audio; get one VadFrame per completed 30 ms frame.

        Leftover samples wait for the next push.
        """
        audio = to_int16(samples)
        if len(self._pending):
            audio = np.concatenate([self._pending, audio])
        whole = len(audio) // self.frame_len * self.frame_len
        frames = [self._classify(audio[i : i + self.frame_len]) for i in range(0, whole, self.frame_len)]
        self._pending = audio[whole:].copy()  # copy: don't pin the caller's (maybe large) buffer
        return frames

    def _classify(self, chunk: np.ndarray) -> VadFrame:
        self._t_ms += FRAME_MS
        energy = frame_dbfs(chunk)
        voiced = energy >= self.settings.min_energy_dbfs and self._vad.is_speech(chunk.tobytes(), self.sample_rate)
        frame = VadFrame(self._t_ms, voiced, energy)
        self._recent.append(frame)
        if voiced:
            self._last_voiced_ms = self._t_ms
            if not self._in_speech:
                run = [f for f in self._recent if f.is_speech]
                if len(run) >= self._start_frames:
                    self._in_speech = True
                    self._started_at = run[0].t_ms - FRAME_MS  # the start of the first voiced frame
        return frame

    @property
    def t_ms(self) -> float:
        """Stream time at the end of the last completed frame."""
        return self._t_ms

    @property
    def in_speech(self) -> bool:
        """True from speech start until the caller's `end_speech()`; silence alone never clears it."""
        return self._in_speech

    def silence_ms(self) -> float:
        """Time since the last voiced frame ended: 0 while voiced, stream time if none yet."""
        if self._last_voiced_ms is None:
            return self._t_ms
        return self._t_ms - self._last_voiced_ms

    def speech_started_at_ms(self) -> float | None:
        """Stream time where the current speech began (back-dated), or None outside speech."""
        return self._started_at if self._in_speech else None

    def end_speech(self) -> None:
        """The endpointer decided the turn is over: wait for fresh speech to start again.

        The window is cleared so the tail of this turn cannot restart speech on its own.
        """
        self._in_speech = False
        self._started_at = None
        self._recent.clear()
