"""Give memory freed by a finished call back to the operating system.

glibc keeps freed blocks in its arenas (one per thread that allocated: Whisper, Piper,
llama.cpp and asyncio each have theirs), so a server's resident size only ratchets
up: in a 45-call run, `malloc_trim` handed back ~150 MB that no Python object or
model held any more. Trimming after each call keeps the figure an operator watches
(RSS) close to what is really in use. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the OS; True when something could be tried. Takes
    milliseconds on a large heap: call it off the event loop."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
