"""Play audio on the default output device (used by `chat --speak`)."""

from __future__ import annotations

import numpy as np

from voice_companion.core.errors import CompanionError
from voice_companion.transports.desk.devices import sounddevice_module


def play(samples: np.ndarray, sample_rate: int) -> None:
    sd = sounddevice_module()
    try:
        sd.play(samples, sample_rate, blocking=True)
    except sd.PortAudioError as exc:
        raise CompanionError(f"cannot play audio ({exc}); check that a speaker is connected, or drop --speak") from exc
