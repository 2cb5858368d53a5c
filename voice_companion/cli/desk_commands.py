"""Typed commands during a desk call: change the voice without hanging up.

`/voice NAME` swaps the voice from the next clause on, `/speed 1.2` speeds it up,
`/voices` lists what can be used. Lines are read from the terminal in a thread and
handled on the call's event loop, so typing never blocks listening.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

from voice_companion.conversation.session import Session
from voice_companion.core.errors import CompanionError
from voice_companion.transports.websocket import call_voice

HELP = "commands: /voice NAME (switch voice), /speed 1.2 (faster; 0.8 slower), /voices (list)"


async def handle_line(session: Session, line: str, say: Callable[[str], None]) -> None:
    """One typed command; every problem is one line, the call goes on."""
    words = line.split()
    if not words:
        return
    command, rest = words[0].lower(), words[1:]
    try:
        if command == "/voice" and len(rest) == 1:
            load_s = await session.set_voice(rest[0])
            say(f"[voice] {rest[0]}" + (f" (loaded in {load_s:.2f} s)" if load_s else ""))
        elif command == "/speed" and len(rest) == 1:
            speed = float(rest[0])
            if not 0.5 <= speed <= 2.0:
                raise ValueError
            control = session.tts.voice_control
            if control is None:
                say("[?] this call's voice is fixed")
                return
            control.set_speed(speed)
            say(f"[voice] speed {speed:g}")
        elif command == "/voices":
            say("[voices] " + ", ".join(call_voice.offered(session.tts, "")))
        else:
            say(f"[?] {HELP}")
    except ValueError:
        say("[?] speed must be a number from 0.5 to 2.0, e.g. /speed 1.2")
    except CompanionError as exc:
        say(f"[voice] {exc}")


def read_commands(session: Session, loop: asyncio.AbstractEventLoop, stream=None) -> threading.Thread:
    """Forward each line of `stream` (the terminal) to `handle_line` on `loop`."""
    stream = stream or sys.stdin

    def say(text: str) -> None:
        print(f"\n{text}", flush=True)

    def reader() -> None:
        for line in stream:
            if line.strip():
                asyncio.run_coroutine_threadsafe(handle_line(session, line, say), loop)

    thread = threading.Thread(target=reader, name="desk-commands", daemon=True)
    thread.start()
    return thread
