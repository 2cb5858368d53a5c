"""Play audio on the default output device (used by `chat --speak`)."""

from __future__ import annotations

import numpy as np

from voice_companion.audio.desk import sounddevice_module
from voice_companion.errors import CompanionError


def play(samples: np.ndarray, sample_rate: int) -> None:
    sd = sounddevice_module()
    try:
        sd.play(samples, sample_rate, blocking=True)
    except sd.PortAudioError as exc:
        raise CompanionError(
            f"cannot play audio ({exc}); check that a speaker is connected, or drop --speak"
        ) from exc
