"""A semaphore that event loops in different threads can share.

The embedded model is one object; its requests normally all run on the command's one
loop, but a server's last conversations finish their learning after that loop has
stopped, on a loop of the memory worker's own (companion/memory/worker.py).
`asyncio.Semaphore` belongs to one loop, so one per loop guarded nothing across them;
this one hands its permits out in arrival order to waiters on any loop.
"""

from __future__ import annotations

import asyncio
import collections
import threading


class SlotGuard:
    def __init__(self, permits: int) -> None:
        self._free = permits
        self._lock = threading.Lock()
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = collections.deque()

    def locked(self) -> bool:
        """No permit is free now."""
        with self._lock:
            return self._free == 0

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
                    raise
            self.release()  # granted while being cancelled: pass it on
            raise

    def release(self) -> None:
        """Free a permit, or hand it straight to the oldest waiter (on its own loop)."""
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_grant, future)
                    return
            self._free += 1


def _grant(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
