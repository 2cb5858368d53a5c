"""Text to speech with Piper, one clause at a time.

The reply pipeline hands Piper a clause as soon as the chunker confirms it, so the
first audio exists ~50 ms after the first clause instead of after the whole reply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voice_companion.core.config import TTSSettings
from voice_companion.core.language import has_han

if TYPE_CHECKING:
    from piper.voice import PiperVoice

HAN_READERS = ("zh", "cmn", "yue")  # espeak-ng voices (Piper's phonemes) that read Chinese characters


@dataclass(frozen=True)
class VoiceSettings:
    """How one voice speaks; the defaults are config.py's [tts] ones."""

    length_scale: float = TTSSettings.length_scale  # > 1 speaks slower
    noise_scale: float = TTSSettings.noise_scale
    noise_w: float = TTSSettings.noise_w
    speaker_id: int = TTSSettings.speaker_id  # -1 = the voice's default speaker
    volume: float = TTSSettings.volume

    @classmethod
    def of(cls, tts: TTSSettings) -> VoiceSettings:
        return cls(tts.length_scale, tts.noise_scale, tts.noise_w, tts.speaker_id, tts.volume)


def length_scale(speed: float) -> float:
    """Piper's length scale for a speaking speed (1.25 = a quarter faster): its inverse."""
    return 1.0 / speed if speed > 0 else 1.0


class VoiceControl(ABC):
    """Changing a call's voice while it runs: what a TTS over several voices can do.

    Declared by `TextToSpeech.voice_control` (None: the voice is fixed), so callers ask
    the engine what it can do instead of probing it for methods."""

    active: str  # the voice the user chose

    @abstractmethod
    def use(self, voice: str) -> float:
        """Speak with `voice` from now on (loads it first); returns the load time in seconds."""

    @abstractmethod
    def set_speed(self, speed: float) -> None:
        """Speak the active voice at `speed` (1.0 = its natural pace)."""

    @abstractmethod
    def installed(self) -> list[str]:
        """Every voice this call may switch to."""


class TextToSpeech(ABC):
    """Speech for one clause at a time, as int16 mono chunks at `sample_rate`."""

    sample_rate: int

    @abstractmethod
    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 mono chunks at `sample_rate` for one clause."""

    def synthesize_all(self, text: str) -> np.ndarray:
        chunks = list(self.synthesize(text))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def can_speak(self, text: str) -> bool:
        """Whether this engine pronounces the text's script. A clause it cannot is shown,
        not spoken: Piper's English voice read "你好" as "Chinese letter, Chinese letter"."""
        return True

    @property
    def voice_control(self) -> VoiceControl | None:
        """How to change the voice mid-call; None: this engine speaks with one voice."""
        return None

    def follow_language(self, language: str | None) -> str | None:
        """Reply in a voice of `language` (the user's); a notice when none is installed.
        One fixed voice speaks every language it is given."""
        return None

    def for_call(self) -> TextToSpeech:
        """The engine one call uses: its own voice choice over shared loaded models."""
        return self

    def prepare_language(self, language: str | None) -> None:
        """The user is speaking `language`: get its voice ready before the reply needs it
        (without blocking). One fixed voice has nothing to prepare."""
        return None


class LoadedVoice(TextToSpeech):
    """One voice model in memory, shared by calls: each clause may bring the calling
    call's own settings (its speed), so a voice is loaded once (engines/voices/pool.py)."""

    @abstractmethod
    def synthesize(self, text: str, settings: VoiceSettings | None = None) -> Iterator[np.ndarray]:
        """Yield int16 mono chunks at `sample_rate`; `settings` override the voice's own."""


class PiperTTS(LoadedVoice):
    """A Piper voice (.onnx + .onnx.json)."""

    def __init__(self, model_path: str | Path, settings: VoiceSettings | None = None, threads: int = 2) -> None:
        self.voice = _load_voice(Path(model_path), threads)
        self.sample_rate: int = int(self.voice.config.sample_rate)
        self.settings = settings or VoiceSettings()

    @property
    def reads_han(self) -> bool:
        """A Chinese voice (its espeak-ng voice is Mandarin or Cantonese)."""
        return (self.voice.config.espeak_voice or "").split("-")[0].lower() in HAN_READERS

    def can_speak(self, text: str) -> bool:
        return self.reads_han or not has_han(text)

    def synthesize(self, text: str, settings: VoiceSettings | None = None) -> Iterator[np.ndarray]:
        """`settings` overrides the voice's own for this text: a loaded voice can be
        shared by several calls, each with its own speed (engines/voices/router.py)."""
        from piper import SynthesisConfig

        if not text.strip() or not self.can_speak(text):
            return  # nothing, rather than noise: the caption has the words
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


def _load_voice(model_path: Path, threads: int) -> PiperVoice:
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
