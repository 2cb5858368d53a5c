"""A phone or browser as the session's sound card.

Microphone: PCM16 frames from the socket, resampled to 16 kHz and cut into the
20 ms blocks the session expects; a token bucket drops audio sent faster than
real time, so one client cannot flood the shared models. Speaker: a pacer pulls
the `PlaybackBuffer` at real-time pace (a little ahead, for the client's jitter
buffer), so what the session counts as "played" is what was sent, and a barge-in
stops the stream within one block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import soxr

from voice_companion.conversation.playback_buffer import PlaybackBuffer
from voice_companion.core.audio import STT_RATE
from voice_companion.core.events import Event

BLOCK_MS = 20
BLOCK = STT_RATE * BLOCK_MS // 1000
SEND_AHEAD_S = 0.2  # audio sent before it is due: absorbs network jitter, bounds barge-in lag
BURST_S = 2.0  # audio a client may send ahead of real time (token bucket size)
MIC_QUEUE_BLOCKS = 250  # 5 s of microphone audio waiting for the session


class RateLimited(Exception):
    """The client sent audio faster than real time; this frame was dropped."""


class RemoteAudio:
    """The `AudioTransport` of one WebSocket client."""

    def __init__(
        self, output_rate: int, emit: Callable[[Event], Awaitable[None]], send_audio: Callable[[str, np.ndarray], None]
    ) -> None:
        self.playback = PlaybackBuffer(output_rate)
        self.output_rate = output_rate
        self._emit = emit
        self._send_audio = send_audio
        self._mic: asyncio.Queue[np.ndarray | None] = asyncio.Queue(MIC_QUEUE_BLOCKS)
        self._pending = np.zeros(0, dtype=np.float32)
        self._input_rate = STT_RATE
        self._resampler: soxr.ResampleStream | None = None
        self._credit_s = BURST_S
        self._credit_at = time.perf_counter()

    # -- microphone ------------------------------------------------------------------

    @property
    def input_rate(self) -> int:
        return self._input_rate

    def set_input_rate(self, rate: int) -> None:
        self._input_rate = rate
        self._resampler = None if rate == STT_RATE else soxr.ResampleStream(rate, STT_RATE, 1, dtype="float32")

    def push_mic(self, samples: np.ndarray) -> None:
        """Queue one client frame (int16 at the declared rate); raises `RateLimited`."""
        if not len(samples):
            return
        self._spend(len(samples) / self._input_rate)
        audio = samples.astype(np.float32) / 32768
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio)
        self._pending = np.concatenate([self._pending, audio])
        while len(self._pending) >= BLOCK:
            block, self._pending = self._pending[:BLOCK], self._pending[BLOCK:]
            if self._mic.full():  # the session fell behind: drop the oldest, like a sound card
                self._mic.get_nowait()
            self._mic.put_nowait(block)

    def _spend(self, seconds: float) -> None:
        now = time.perf_counter()
        self._credit_s = min(BURST_S, self._credit_s + now - self._credit_at)
        self._credit_at = now
        if seconds > self._credit_s:
            raise RateLimited(f"audio arrives faster than real time; {seconds * 1000:.0f} ms dropped")
        self._credit_s -= seconds

    def end(self) -> None:
        """The client left: the session's audio loop ends."""
        if self._mic.full():
            self._mic.get_nowait()
        self._mic.put_nowait(None)

    async def mic_frames(self) -> AsyncIterator[tuple[np.ndarray, float]]:
        while (block := await self._mic.get()) is not None:
            yield block, time.perf_counter()

    async def emit(self, event: Event) -> None:
        await self._emit(event)

    # -- speaker ---------------------------------------------------------------------

    async def pace(self) -> None:
        """Send the companion's voice at real-time pace, `SEND_AHEAD_S` ahead."""
        block = self.output_rate * BLOCK_MS // 1000
        sent_until = time.perf_counter()  # wall time at which the client runs out of audio
        while True:
            now = time.perf_counter()
            sent_until = max(sent_until, now)
            while sent_until < now + SEND_AHEAD_S:
                pieces = self.playback.take(block)
                if not pieces:
                    break
                for response_id, samples in pieces:
                    self._send_audio(response_id, samples)
                    sent_until += len(samples) / self.output_rate
            await asyncio.sleep(BLOCK_MS / 1000)
