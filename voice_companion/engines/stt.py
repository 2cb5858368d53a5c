"""Speech to text with faster-whisper (CTranslate2, int8 on the CPU).

Short utterances (what a conversation is made of) take a fast path: Whisper's
encoder normally sees a fixed 30 s window, which costs ~0.5 s here whatever was
said. CTranslate2 accepts a shorter mel input, so we encode only the speech plus
a margin of silence, once, and reuse that encoding for language detection and
greedy decoding: a 4 s question drops from ~0.8 s to ~0.25 s with the same words
(accuracy checked by scripts/check_stt_window.py, numbers in docs/benchmarks.md).
Long recordings use faster-whisper's own loop with its Silero VAD.

Chinese output is converted to simplified characters (Whisper base often answers
in traditional ones) and never carries U+FFFD replacement characters.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from voice_companion.core.audio import STT_RATE

if TYPE_CHECKING:
    import opencc

FAST_PATH_MAX_S = 25.0  # longer audio goes through faster-whisper's segment loop
WINDOW_MARGIN_S = 1.5  # silence kept after the speech in the shortened window
MIN_WINDOW_S = 8.0  # shorter windows drop words and loop on unfinished phrases (measured)
MAX_COMPRESSION = 2.4  # Whisper's own test for a looping transcript
# Whisper's own rule for "no speech here": a likely no-speech token and an unsure
# transcript. Without it a cough or a hum during a reply came out as "Oh" or "you".
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
_ZH_PROMPT = "以下是普通话的句子。"


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    duration_s: float
    stt_ms: float
    no_speech_prob: float = 0.0  # Whisper's belief that there was no speech at all


class SpeechToText(Protocol):
    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """`audio`: 16 kHz mono float32. `language`: None to detect."""
        ...


class WhisperSTT:
    """faster-whisper behind the `SpeechToText` interface."""

    def __init__(
        self,
        model_dir: str | Path,
        compute_type: str = "int8",
        threads: int = 2,
        beam_size: int = 1,
        window_margin_s: float | None = WINDOW_MARGIN_S,  # None: faster-whisper's own loop
        min_window_s: float = MIN_WINDOW_S,
    ) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
        self.beam_size = beam_size
        self.window_margin_s = window_margin_s
        self.min_window_s = min_window_s
        self._to_simplified: opencc.OpenCC | None = None  # loaded on the first Chinese text

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        start = time.perf_counter()
        audio = audio.astype(np.float32, copy=False)
        duration = len(audio) / STT_RATE
        if self.window_margin_s is not None and duration <= FAST_PATH_MAX_S:
            text, detected, probability, no_speech = self._short(audio, language or None)
            if _compression_ratio(text) > MAX_COMPRESSION:  # looping: retry on the full window
                text, detected, probability, no_speech = self._short(audio, language or None, window_s=30.0)
        else:
            text, detected, probability = self._long(audio, language or None)
            no_speech = 0.0
        text = self._clean(text.strip(), detected)
        elapsed_ms = (time.perf_counter() - start) * 1000
        return Transcript(text, detected, probability, duration, elapsed_ms, no_speech)

    def _short(
        self, audio: np.ndarray, language: str | None, window_s: float | None = None
    ) -> tuple[str, str, float, float]:
        """One encoder pass over a window just long enough for the speech."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        seconds = window_s or max(self.min_window_s, math.ceil(len(audio) / STT_RATE + (self.window_margin_s or 0)))
        window = np.zeros(int(min(seconds, 30) * STT_RATE), dtype=np.float32)
        window[: len(audio)] = audio
        features = self.model.feature_extractor(window)
        features = features[:, : features.shape[1] // 2 * 2]  # the encoder halves the frames
        encoded = self.model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])), to_cpu=False
        )
        probability = 1.0
        if language is None:
            best_token, probability = self.model.model.detect_language(encoded)[0][0]
            language = best_token[2:-2]  # "<|en|>" -> "en"
        tokenizer = Tokenizer(self.model.hf_tokenizer, True, task="transcribe", language=language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        if language == "zh":
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + _ZH_PROMPT), *prompt]
        result = self.model.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=min(440, int(40 + 15 * len(audio) / STT_RATE)),
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        no_speech = float(result.no_speech_prob)
        if no_speech > NO_SPEECH_PROB and result.scores[0] < NO_SPEECH_LOGPROB:
            return "", language, float(probability), no_speech  # noise: Whisper would invent words
        return tokenizer.decode(result.sequences_ids[0]), language, float(probability), no_speech

    def _long(self, audio: np.ndarray, language: str | None) -> tuple[str, str, float]:
        segments, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            # No sampling fallback: a retry at higher temperature doubles the time of a
            # turn and makes results random; one greedy pass is fast and repeatable.
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=True,
            initial_prompt=_ZH_PROMPT if language == "zh" else None,
        )
        text = "".join(segment.text for segment in segments)
        return text, info.language, float(info.language_probability)

    def _clean(self, text: str, language: str) -> str:
        text = text.replace("\ufffd", "")
        if language == "zh":
            if self._to_simplified is None:
                import opencc

                self._to_simplified = opencc.OpenCC("t2s")
            text = self._to_simplified.convert(text)
        return text


def _compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
