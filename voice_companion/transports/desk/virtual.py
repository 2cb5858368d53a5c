"""A full-duplex sound card in software, paced in real time.

Tests, benchmarks and file mode talk to the session through it exactly as the
desk talks through PortAudio: every block (20 ms) it hands the session the next
piece of "microphone" audio and plays the next piece of the companion's voice.
Optionally the speaker leaks back into the microphone through an `EchoPath`
(delay, attenuation, room reverberation), to test that the companion does not
interrupt itself, and an echo canceller cleans the microphone with the speaker
signal as reference, as in desk mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import soxr

from voice_companion.conversation.playback_buffer import PlaybackBuffer
from voice_companion.core.audio import STT_RATE
from voice_companion.core.events import Event


@dataclass
class EchoPath:
    """Speaker → room → microphone: a delay, a gain and an impulse response."""

    delay_ms: float = 60.0
    gain: float = 0.3
    rt60_s: float = 0.25  # reverberation time; 0 = none
    seed: int = 7
    _history: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n = max(1, int(self.rt60_s * STT_RATE))
        decay = np.exp(-6.9 * np.arange(n) / n)  # -60 dB over rt60
        rir = rng.standard_normal(n) * decay if self.rt60_s > 0 else np.ones(1)
        rir[0] = 1.0
        rir /= np.sqrt(np.sum(rir**2))
        delay = int(self.delay_ms * STT_RATE / 1000)
        self.rir = np.concatenate([np.zeros(delay), rir]).astype(np.float32) * self.gain

    def apply(self, speaker: np.ndarray) -> np.ndarray:
        """The echo that reaches the microphone during this block (streaming convolution)."""
        keep = len(self.rir) - 1
        signal = np.concatenate([self._history, speaker])
        out = np.convolve(signal, self.rir)[len(self._history) : len(self._history) + len(speaker)]
        self._history = signal[-keep:] if keep else signal[:0]
        return out.astype(np.float32)


class VirtualAudioDevice:
    """Microphone input scripted as (start_s, audio) clips; speaker output recorded."""

    def __init__(
        self,
        output_rate: int,
        duration_s: float,
        block_ms: int = 20,
        echo: EchoPath | None = None,
        echo_canceller=None,
        on_event: Callable[[Event], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock  # the event loop's time in the fast tests (tests/fakes.py): virtual, not wall
        self.playback = PlaybackBuffer(output_rate, clock=clock)
        self.output_rate = output_rate
        self.block_in = STT_RATE * block_ms // 1000
        self.block_out = output_rate * block_ms // 1000
        self.duration_s = duration_s
        self.mic = np.zeros(int(duration_s * STT_RATE), dtype=np.float32)
        self.speaker: list[np.ndarray] = []
        self.events: list[tuple[float, Event]] = []  # (seconds since start, event)
        self.echo = echo
        self.echo_canceller = echo_canceller
        self.on_event = on_event
        self._to_mic_rate = soxr.ResampleStream(output_rate, STT_RATE, 1, dtype="float32")
        self._fifo = np.zeros(0, dtype=np.float32)
        self._stop = asyncio.Event()
        self.started_wall: float | None = None

    def say(self, start_s: float, audio_16k: np.ndarray) -> None:
        """Schedule user speech (16 kHz float32) at `start_s` seconds."""
        start = int(start_s * STT_RATE)
        end = min(len(self.mic), start + len(audio_16k))
        self.mic[start:end] += audio_16k[: end - start]

    def stop(self) -> None:
        self._stop.set()

    async def mic_frames(self) -> AsyncIterator[tuple[np.ndarray, float]]:
        """Yield (16 kHz float32 block, wall time at its end) every block, in real time."""
        self.started_wall = start = self.clock()
        blocks = len(self.mic) // self.block_in
        for i in range(blocks):
            if self._stop.is_set():
                return
            due = start + (i + 1) * self.block_in / STT_RATE
            await asyncio.sleep(max(0.0, due - self.clock()))
            out = self.playback.pull(self.block_out)
            self.speaker.append(out)
            block = self.mic[i * self.block_in : (i + 1) * self.block_in].copy()
            reference = self._reference_block(out)
            if self.echo is not None:
                block += self.echo.apply(reference)
            if self.echo_canceller is not None:
                block = self.echo_canceller.process(block, reference)
            yield block, self.clock()

    def _reference_block(self, out: np.ndarray) -> np.ndarray:
        """The speaker block at the microphone's rate (a FIFO absorbs resampler jitter)."""
        fresh = self._to_mic_rate.resample_chunk(out.astype(np.float32) / 32768)
        self._fifo = np.concatenate([self._fifo, fresh])
        block = np.zeros(self.block_in, dtype=np.float32)
        take = min(self.block_in, len(self._fifo))
        block[:take] = self._fifo[:take]
        self._fifo = self._fifo[take:]
        return block

    async def emit(self, event: Event) -> None:
        self.events.append((self.clock() - (self.started_wall or 0.0), event))
        if self.on_event:
            self.on_event(event)

    def speaker_audio(self) -> np.ndarray:
        return np.concatenate(self.speaker) if self.speaker else np.zeros(0, dtype=np.int16)

    def of_type(self, cls) -> list:
        return [e for _, e in self.events if isinstance(e, cls)]
