"""Fuzzing the live server: generated frames over a real WebSocket, judged from outside.

One sequence = one connection: connect, send the frames as fast as the socket takes
them, then ping until a `pong` proves the call still works (the input budgets may
drop the first pings). The only acceptable ends are a pong or a documented close
(4009: too many invalid messages; 1007: a text frame that is not UTF-8); an
`internal_error`, a 1011 close or a hang is a failure. A `Bystander` on its own
connection and thread pings all along: its pong latency shows whether other sessions
were affected.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import threading
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

# docs/protocol.md: over 50 invalid messages within 10 s; the WebSocket layer's own
# answer to a text frame that is not UTF-8
ACCEPTED_CLOSES = {4009, 1007}
PING = json.dumps({"type": "ping", "event_id": "fuzz-end"})


@dataclass
class Tally:
    sequences: int = 0
    frames: int = 0
    alive: int = 0  # ended with a pong
    closes: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)  # error codes received
    failures: list[str] = field(default_factory=list)


async def run_sequence(url: str, token: str, frames: list, tally: Tally, timeout_s: float = 15) -> None:
    tally.sequences += 1
    try:
        await asyncio.wait_for(_sequence(url, token, frames, tally), timeout_s)
    except TimeoutError:
        tally.failures.append(f"hang: no pong within {timeout_s} s after {len(frames)} frames")


async def _sequence(url: str, token: str, frames: list, tally: Tally) -> None:
    for _attempt in range(20):
        try:
            ws = await connect(f"{url}?token={token}", max_size=None, open_timeout=10, compression=None)
            break
        except InvalidStatus as exc:  # 503: the previous sequences' sessions are still closing
            if exc.response.status_code != 503:
                raise
            await asyncio.sleep(0.25)
    else:
        tally.failures.append("server stayed full (503) for 5 s")
        return
    async with ws:
        try:
            await ws.recv()  # session.created
            for frame in frames:
                data, text = _on_the_wire(frame)
                await ws.send(data, text=text)
                tally.frames += 1
            await ws.send(PING)
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    await ws.send(PING)  # the events budget may have dropped the last one
                    continue
                if isinstance(message, bytes):
                    continue
                event = json.loads(message)
                if event.get("type") == "error":
                    tally.errors[event["code"]] += 1
                    if event["code"] == "internal_error":
                        tally.failures.append(f"internal_error: {event['message']}")
                elif event.get("type") == "pong" and event.get("event_id") == "fuzz-end":
                    tally.alive += 1
                    return
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            tally.closes[code] += 1
            if code not in ACCEPTED_CLOSES:
                tally.failures.append(f"closed with {code} ({exc.rcvd.reason if exc.rcvd else 'no close frame'})")


def _on_the_wire(frame: str | bytes) -> tuple[str | bytes, bool | None]:
    """A generated str with a lone surrogate cannot be encoded as UTF-8 (the client library
    itself would fail): it goes out as the bytes a broken client would put in a text frame."""
    if isinstance(frame, str):
        try:
            frame.encode("utf-8")
        except UnicodeEncodeError:
            return frame.encode("utf-8", "surrogatepass"), True
    return frame, None


class Bystander:
    """An innocent caller on its own thread: pings every 0.2 s, never expects to be dropped."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.latencies_ms: list[float] = []
        self.failure: str | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Bystander:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        try:
            async with connect(f"{self.url}?token={self.token}") as ws:
                await ws.recv()
                self._ready.set()
                while not self._stop.is_set():
                    sent = time.perf_counter()
                    await ws.send('{"type": "ping", "event_id": "bystander"}')
                    while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("type") != "pong":
                        pass
                    self.latencies_ms.append((time.perf_counter() - sent) * 1000)
                    await asyncio.sleep(0.2)
        except Exception as exc:  # noqa: BLE001 - any end is the finding
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), from /proc."""
    with open(f"/proc/{pid or os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
