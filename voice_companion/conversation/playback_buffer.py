"""What the speaker is about to play, shared between the session and a sound card.

The session enqueues reply audio; the sound card (a PortAudio callback thread, or
the virtual device's clock) pulls fixed-size blocks. Pausing or flushing takes
effect on the very next block, so a barge-in silences the companion within one
block (10–20 ms). Per response it counts the samples actually played, which is
what the history keeps when the user cuts in.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Replies whose played length is kept: the history asks only about the latest ones (a
# barge-in, a client's late truncate), and a call of hours must not grow without end.
KEEP_PLAYED = 64


@dataclass
class _Played:
    samples: int = 0
    first_wall: float | None = None  # the buffer's clock when its first sample went out


@dataclass
class PlaybackBuffer:
    sample_rate: int
    _queue: collections.deque[tuple[str, np.ndarray]] = field(default_factory=collections.deque)
    _played: collections.OrderedDict[str, _Played] = field(default_factory=collections.OrderedDict)
    _paused: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The transport's clock, which stamps its microphone blocks too: a test's virtual clock
    # keeps voice-to-voice latency (mic block -> first sample out) on one time line.
    clock: Callable[[], float] = time.perf_counter

    def enqueue(self, response_id: str, samples: np.ndarray) -> None:
        with self._lock:
            if response_id not in self._played:
                self._played[response_id] = _Played()
                while len(self._played) > KEEP_PLAYED:  # a long call: forget the oldest replies
                    self._played.popitem(last=False)
            if len(samples):
                self._queue.append((response_id, samples.astype(np.int16, copy=False)))

    def pull(self, n: int) -> np.ndarray:
        """The next `n` samples to play (silence when empty or paused)."""
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        for _, samples in self.take(n):
            out[filled : filled + len(samples)] = samples
            filled += len(samples)
        return out

    def take(self, n: int) -> list[tuple[str, np.ndarray]]:
        """Play up to `n` samples, tagged with their response: a network transport
        sends only real audio (no padding) and labels each piece with its response."""
        pieces: list[tuple[str, np.ndarray]] = []
        with self._lock:
            taken = 0
            while not self._paused and taken < n and self._queue:
                response_id, samples = self._queue[0]
                count = min(n - taken, len(samples))
                pieces.append((response_id, samples[:count]))
                stats = self._played[response_id]
                if stats.first_wall is None:
                    stats.first_wall = self.clock()
                stats.samples += count
                taken += count
                if count == len(samples):
                    self._queue.popleft()
                else:
                    self._queue[0] = (response_id, samples[count:])
        return pieces

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def flush(self) -> None:
        """Drop everything queued (a confirmed interruption) and un-pause."""
        with self._lock:
            self._queue.clear()
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def pending(self) -> bool:
        """Audio still queued (playing or paused)."""
        with self._lock:
            return bool(self._queue)

    def played_ms(self, response_id: str) -> float:
        with self._lock:
            stats = self._played.get(response_id)
            return 1000 * stats.samples / self.sample_rate if stats else 0.0

    def first_sample_wall(self, response_id: str) -> float | None:
        with self._lock:
            stats = self._played.get(response_id)
            return stats.first_wall if stats else None
