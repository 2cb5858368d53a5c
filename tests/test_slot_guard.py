"""The embedded model's slot guard holds across event loops in different threads."""

from __future__ import annotations

import asyncio
import threading
import time

from voice_companion.engines.slot_guard import SlotGuard


def test_one_permit_is_exclusive_across_two_loops():
    guard = SlotGuard(1)
    inside, most, order = [0], [0], []
    lock = threading.Lock()

    async def use(name: str) -> None:
        for _ in range(5):
            await guard.acquire()
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            order.append(name)
            time.sleep(0.005)  # blocking work, as llama.cpp's call is
            with lock:
                inside[0] -= 1
            guard.release()
            await asyncio.sleep(0)

    threads = [threading.Thread(target=asyncio.run, args=(use(n),)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == 1 and sorted(order) == ["a"] * 5 + ["b"] * 5
    assert not guard.locked() and guard.waiting == 0


def test_a_cancelled_waiter_does_not_lose_the_permit():
    async def main() -> None:
        guard = SlotGuard(1)
        await guard.acquire()
        waiter = asyncio.ensure_future(guard.acquire())
        await asyncio.sleep(0)
        assert guard.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert guard.waiting == 0
        guard.release()
        await asyncio.wait_for(guard.acquire(), 1)  # the permit came back
        guard.release()

    asyncio.run(main())


def test_a_permit_granted_while_cancelling_passes_on():
    async def main() -> None:
        guard = SlotGuard(1)
        await guard.acquire()
        first = asyncio.ensure_future(guard.acquire())
        second = asyncio.ensure_future(guard.acquire())
        await asyncio.sleep(0)
        guard.release()  # granted to `first`...
        first.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1)  # so `second` gets it
        assert guard.locked()

    asyncio.run(main())
