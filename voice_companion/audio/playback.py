"""Play audio on the default output device (used by `chat --speak`)."""

from __future__ import annotations

import numpy as np

from voice_companion.errors import CompanionError


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise CompanionError(
            "PortAudio is not installed; install it with: sudo apt-get install libportaudio2"
        ) from exc
    return sounddevice


def play(samples: np.ndarray, sample_rate: int) -> None:
    sd = _sounddevice()
    try:
        sd.play(samples, sample_rate, blocking=True)
    except sd.PortAudioError as exc:
        raise CompanionError(
            f"cannot play audio ({exc}); check that a speaker is connected, or drop --speak"
        ) from exc
