"""Per-connection input limits: how much a client may send, beyond the per-frame sizes.

The parser bounds each frame (protocol.py) and the transport bounds audio to real
time; these token buckets bound the rest, so one client cannot spend the shared
CPU on parsing or on replies it never waits for: audio frames per second, text bytes
per second, events and `session.update`s per second, and typed text waiting for
`response.create`. Audio and events have separate budgets, so a flood of audio never
holds back a control event (a ping, a truncate after a barge-in).
A frame over a budget is dropped with a `rate_limited` error (docs/protocol.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from voice_companion.transports.websocket import protocol as p
from voice_companion.transports.websocket.transport import RateLimited

MAX_FRAMES_PER_S, FRAME_BURST = 100, 200  # audio frames: clients send 20-100 ms each, ≤ 50/s
MAX_TEXT_BYTES_PER_S, TEXT_BYTE_BURST = 128 * 1024, 512 * 1024
MAX_EVENTS_PER_S, EVENT_BURST = 20, 50  # JSON events (pings, marks, typed messages…)
MAX_UPDATES_PER_S, UPDATE_BURST = 1, 5  # session.update: swaps the persona prompt
MAX_TYPED_CHARS = p.MAX_INPUT_TEXT_CHARS  # typed text waiting for response.create, all items together


@dataclass
class TokenBucket:
    """`rate` units per second, at most `burst` saved up."""

    rate: float
    burst: float
    credit: float = -1.0
    at: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if self.credit < 0:
            self.credit = self.burst

    def take(self, cost: float = 1.0) -> bool:
        now = time.perf_counter()
        self.credit = min(self.burst, self.credit + (now - self.at) * self.rate)
        self.at = now
        if cost > self.credit:
            return False
        self.credit -= cost
        return True


class InputLimits:
    """The budgets of one connection; `admit_*` raise `RateLimited` for a frame to drop."""

    def __init__(self) -> None:
        self.frames = TokenBucket(MAX_FRAMES_PER_S, FRAME_BURST)
        self.text_bytes = TokenBucket(MAX_TEXT_BYTES_PER_S, TEXT_BYTE_BURST)
        self.events = TokenBucket(MAX_EVENTS_PER_S, EVENT_BURST)
        self.updates = TokenBucket(MAX_UPDATES_PER_S, UPDATE_BURST)
        self.dropped = 0  # frames refused here, for the figures in docs/reliability.md

    def admit_frame(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            if not self.frames.take():
                self._drop(f"over {MAX_FRAMES_PER_S} audio frames a second; send 20-100 ms of audio per frame")
        elif not self.text_bytes.take(min(len(message), p.MAX_TEXT_BYTES)):
            self._drop(f"over {MAX_TEXT_BYTES_PER_S // 1024} KiB of JSON a second")

    def admit_event(self) -> None:
        """A valid event (invalid ones count against the connection's error budget instead)."""
        if not self.events.take():
            self._drop(f"over {MAX_EVENTS_PER_S} events a second")

    def admit_update(self) -> None:
        if not self.updates.take():
            self._drop(f"over {MAX_UPDATES_PER_S} session.update a second")

    @staticmethod
    def check_typed(waiting: list[str], text: str, event_id: str | None) -> None:
        """Typed messages pile up until `response.create`: bound them like one message."""
        if sum(len(t) + 1 for t in waiting) + len(text) > MAX_TYPED_CHARS:
            raise p.ProtocolError(
                "too_much_input",
                f"typed messages waiting for response.create are limited "
                f"to {MAX_TYPED_CHARS} characters in all; send response.create",
                event_id,
            )

    def _drop(self, why: str) -> None:
        self.dropped += 1
        raise RateLimited(f"{why}; this frame was dropped")
