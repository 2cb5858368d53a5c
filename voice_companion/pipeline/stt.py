"""Speech to text with faster-whisper (CTranslate2, int8 on the CPU).

Chinese output is converted to simplified characters (Whisper base often answers
in traditional ones) and never carries U+FFFD replacement characters, which
Whisper emits when a multi-byte character is split across tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from voice_companion.audio.io import STT_RATE

# Longer inputs go through faster-whisper's Silero VAD so silence costs nothing.
VAD_FILTER_ABOVE_S = 30.0
_ZH_PROMPT = "以下是普通话的句子。"


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    duration_s: float
    stt_ms: float


class SpeechToText(Protocol):
    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """`audio`: 16 kHz mono float32. `language`: None to detect."""
        ...


class WhisperSTT:
    """faster-whisper behind the `SpeechToText` interface."""

    def __init__(
        self, model_dir: str | Path, compute_type: str = "int8", threads: int = 2, beam_size: int = 1
    ) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads
        )
        self.beam_size = beam_size
        self._to_simplified = None

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        start = time.perf_counter()
        duration = len(audio) / STT_RATE
        segments, info = self.model.transcribe(
            audio.astype(np.float32, copy=False),
            language=language or None,
            beam_size=self.beam_size,
            # No sampling fallback: a retry at higher temperature doubles the time of a
            # turn and makes results random; one greedy pass is fast and repeatable.
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=duration > VAD_FILTER_ABOVE_S,
            initial_prompt=_ZH_PROMPT if language == "zh" else None,
        )
        text = "".join(segment.text for segment in segments).strip()
        detected = info.language
        text = self._clean(text, detected)
        elapsed_ms = (time.perf_counter() - start) * 1000
        return Transcript(text, detected, float(info.language_probability), duration, elapsed_ms)

    def _clean(self, text: str, language: str) -> str:
        text = text.replace("\ufffd", "")
        if language == "zh":
            if self._to_simplified is None:
                import opencc

                self._to_simplified = opencc.OpenCC("t2s")
            text = self._to_simplified.convert(text)
        return text
