"""Streaming speech detection on 16 kHz audio with webrtcvad plus an energy gate.

webrtcvad decides per 30 ms frame; one voiced frame is not speech (clicks, a
cough), so speech starts once `start_frames` of the last `window_frames` frames
are voiced, back-dated to the first of them. Quiet frames are never speech:
webrtcvad flags low steady noise surprisingly often. The detector does not decide
when a turn ends — that depends on what was said (see endpointing.py); it only
reports how long the silence has lasted.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np
import webrtcvad

FRAME_MS = 30


@dataclass(frozen=True)
class VadSettings:
    aggressiveness: int = 2  # webrtcvad mode 0..3; 3 rejects more noise and more soft speech
    start_frames: int = 3  # voiced frames (of the window) that start speech: 90 ms
    window_frames: int = 10  # 300 ms
    min_energy_dbfs: float = -45.0  # quieter frames are never speech


@dataclass(frozen=True)
class VadFrame:
    t_ms: float  # stream time at the end of this frame
    is_speech: bool
    energy_dbfs: float


class SpeechDetector:
    def __init__(self, settings: VadSettings | None = None, sample_rate: int = 16000) -> None:
        self.settings = settings or VadSettings()
        self.sample_rate = sample_rate
        self.frame_len = sample_rate * FRAME_MS // 1000
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
        self._recent: collections.deque[VadFrame] = collections.deque(maxlen=self.settings.window_frames)
        self.t_ms = 0.0
        self._in_speech = False
        self._started_at: float | None = None
        self._last_voiced_ms: float | None = None

    def push(self, samples: np.ndarray) -> list[VadFrame]:
        """Feed any amount of audio (float in [-1, 1] or int16); get one VadFrame per 30 ms."""
        if samples.dtype != np.int16:
            samples = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        self._pending = np.concatenate([self._pending, samples])
        frames = []
        while len(self._pending) >= self.frame_len:
            chunk, self._pending = self._pending[: self.frame_len], self._pending[self.frame_len :]
            frames.append(self._classify(chunk))
        return frames

    def _classify(self, chunk: np.ndarray) -> VadFrame:
        self.t_ms += FRAME_MS
        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) / 32768
        energy = 20 * np.log10(max(rms, 1e-9))
        voiced = energy >= self.settings.min_energy_dbfs and self._vad.is_speech(
            chunk.tobytes(), self.sample_rate
        )
        frame = VadFrame(self.t_ms, voiced, energy)
        self._recent.append(frame)
        if voiced:
            self._last_voiced_ms = self.t_ms
        if not self._in_speech:
            voiced_recent = [f for f in self._recent if f.is_speech]
            if len(voiced_recent) >= self.settings.start_frames:
                self._in_speech = True
                self._started_at = voiced_recent[0].t_ms - FRAME_MS
        return frame

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def speech_started_at_ms(self) -> float | None:
        return self._started_at if self._in_speech else None

    def silence_ms(self) -> float:
        """Time since the last voiced frame (0 while voiced)."""
        if self._last_voiced_ms is None:
            return self.t_ms
        return self.t_ms - self._last_voiced_ms

    def end_speech(self) -> None:
        """The endpointer decided the turn is over: wait for new speech."""
        self._in_speech = False
        self._started_at = None
        self._recent.clear()
