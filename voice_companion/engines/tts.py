"""Text to speech with Piper, one clause at a time.

The reply pipeline hands Piper a clause as soon as the chunker confirms it, so the
first audio exists ~50 ms after the first clause instead of after the whole reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class VoiceSettings:
    length_scale: float = 1.0  # > 1 speaks slower
    noise_scale: float = 0.667
    noise_w: float = 0.8
    speaker_id: int = -1  # -1 = the voice's default speaker
    volume: float = 1.0


class TextToSpeech(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 mono chunks at `sample_rate` for one clause."""
        ...


class PiperTTS:
    """A Piper voice (.onnx + .onnx.json) behind the `TextToSpeech` interface."""

    def __init__(self, model_path: str | Path, settings: VoiceSettings | None = None, threads: int = 2) -> None:
        self.voice = _load_voice(Path(model_path), threads)
        self.sample_rate: int = int(self.voice.config.sample_rate)
        self.settings = settings or VoiceSettings()

    def synthesize(self, text: str, settings: VoiceSettings | None = None) -> Iterator[np.ndarray]:
        """`settings` overrides the voice's own for this text: a loaded voice can be
        shared by several calls, each with its own speed (engines/voices/router.py)."""
        from piper import SynthesisConfig

        if not text.strip():
            return
        s = settings or self.settings
        config = SynthesisConfig(
            speaker_id=s.speaker_id if s.speaker_id >= 0 else None,
            length_scale=s.length_scale,
            noise_scale=s.noise_scale,
            noise_w_scale=s.noise_w,
            volume=s.volume,
        )
        for chunk in self.voice.synthesize(text, syn_config=config):
            yield chunk.audio_int16_array

    def synthesize_all(self, text: str, settings: VoiceSettings | None = None) -> np.ndarray:
        chunks = list(self.synthesize(text, settings))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def _load_voice(model_path: Path, threads: int):
    """Like PiperVoice.load, with onnxruntime's threads not spinning: spinning threads
    fight the LLM and Whisper for the same two cores during a live reply."""
    import json

    import onnxruntime
    from piper.voice import ESPEAK_DATA_DIR, PiperConfig, PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8"))
    if config.get("phoneme_type") == "pinyin":  # piper would fetch its g2pW model mid-call
        from voice_companion.core.errors import ModelNotAvailable

        raise ModelNotAvailable(
            f"{model_path.name} needs piper's pinyin phonemizer (the unicode-rbnf package and "
            "a g2pW model piper downloads on first use), so it cannot run offline; use "
            "zh_CN-huayan-medium (see voices/README.md)"
        )
    session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(config=PiperConfig.from_dict(config), session=session, espeak_data_dir=Path(ESPEAK_DATA_DIR))
