"""Play audio on the default output device (`chat --speak`, `voices preview`)."""

from __future__ import annotations

import numpy as np

from voice_companion.core.errors import CompanionError
from voice_companion.transports.desk.devices import sounddevice_module


def play(samples: np.ndarray, sample_rate: int, otherwise: str) -> None:
    """`otherwise` is the caller's way around a missing speaker, e.g. "drop --speak"."""
    sd = sounddevice_module()
    try:
        sd.play(samples, sample_rate, blocking=True)
    except (sd.PortAudioError, ValueError) as exc:
        raise CompanionError(f"cannot play audio ({exc}); check that a speaker is connected, or {otherwise}") from exc
