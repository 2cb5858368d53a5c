"""The end of a session, before the process exits: learning, summary, warm start.

Why here and not in `atexit`: at interpreter shutdown Python refuses new threads and
futures, and every `chat`, `demo` and `reply` used to end with a traceback and a
session without its summary. Commands await `finish_session` on their one event loop,
while the process is whole; it takes a bounded time (the memory worker's budget, then a
prefill of the turns the LLM has not seen: usually well under a second) and says
what it does when that passes a second. A process killed meanwhile loses no turn:
the next start finishes the summary (memory_worker.finish_orphaned_sessions).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable

from voice_companion.conversation.history import Conversation
from voice_companion.engines.llm import LLMBackend

log = logging.getLogger(__name__)
QUIET_FOR_S = 1.0  # say nothing about work that ends sooner


async def finish_session(conversation: Conversation, llm: LLMBackend | None, name: str = "the companion") -> None:
    """Finish what the session learned, then save the next session's warm start: awaited
    on the command's own event loop (the LLM's HTTP client and slot guard live there)."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    announce = loop.call_later(
        QUIET_FOR_S, lambda: print(f"Saving what {name} learned for next time…", file=sys.stderr, flush=True)
    )
    try:
        await _in_daemon_thread(conversation.close)  # a second Ctrl+C must not wait for it
        if llm is not None:
            await conversation.save_for_next(llm)
    except asyncio.CancelledError:  # Ctrl+C
        log.warning("stopped early: the summary is finished at the next start")
        raise
    finally:
        announce.cancel()
    elapsed = time.monotonic() - started
    if elapsed > QUIET_FOR_S:
        print(f"Saved for next time in {elapsed:.1f} s.", file=sys.stderr, flush=True)


async def _in_daemon_thread(work: Callable[[], None]) -> None:
    """`work()` off the loop in a daemon thread: unlike the default executor, which
    `asyncio.run` waits for at exit, it never keeps a stopped process alive (the next
    start finishes the summary)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error else done.set_result(None)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop is gone: nobody waits any more
            log.warning("stopped early: the summary is finished at the next start")

    threading.Thread(target=run, name="session-end", daemon=True).start()
    await done
