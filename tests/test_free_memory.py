"""Freed heap memory goes back to the OS after a call (glibc keeps it otherwise)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from voice_companion.transports.websocket import free_memory

PROBE = textwrap.dedent("""
    from voice_companion.transports.websocket.free_memory import release_free_memory

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))

    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB from malloc's heap
    keep = blocks[-1]  # pins the heap's top: glibc cannot shrink it by itself
    del blocks
    held = rss_mb()
    print(held, rss_mb() if release_free_memory() else held)
""")


@pytest.mark.skipif(free_memory._TRIM is None, reason="not glibc: nothing to trim")
def test_freed_memory_is_returned_to_the_os():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    held, after = map(float, result.stdout.split())
    assert held > 150, held  # freed, but still resident
    assert after < held - 120, (held, after)
