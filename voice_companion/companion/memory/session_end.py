"""The end of a session, before the process exits: learning, summary, warm start.

Why here and not in `atexit`: at interpreter shutdown Python refuses new threads and
futures, and every `chat`, `demo` and `reply` used to end with a traceback and a
session without its summary. Commands call `end_session` themselves, while the
process is whole; it takes a bounded time (the memory worker's budget, then a
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

from voice_companion.conversation.history import Conversation
from voice_companion.engines.llm import LLMBackend

log = logging.getLogger(__name__)
QUIET_FOR_S = 1.0  # say nothing about work that ends sooner


def end_session(conversation: Conversation, llm: LLMBackend | None, name: str = "the companion") -> None:
    """Finish what the session learned, then save the next session's warm start."""
    started = time.monotonic()
    done = threading.Event()

    def announce() -> None:
        if not done.wait(QUIET_FOR_S):
            print(f"Saving what {name} learned for next time…", file=sys.stderr, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    try:
        conversation.close()
        if llm is not None:
            asyncio.run(conversation.save_for_next(llm))
    except KeyboardInterrupt:
        log.warning("stopped early: the summary is finished at the next start")
    finally:
        done.set()
    elapsed = time.monotonic() - started
    if elapsed > QUIET_FOR_S:
        print(f"Saved for next time in {elapsed:.1f} s.", file=sys.stderr, flush=True)
