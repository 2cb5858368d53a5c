"""The live server under generated input (short version of scripts/fuzz_server.py).

Real `App`, real models, real sockets on 127.0.0.1: every generated sequence ends in a
pong or a documented close, a bystander's pings keep being answered, and no session
is left behind.
"""

from __future__ import annotations

import asyncio
import time

from fuzz_frames import FRAMES
from fuzz_live import Bystander, Tally, run_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import TOKEN

SEQUENCES = st.lists(FRAMES, min_size=10, max_size=30)


def test_generated_frames_never_crash_hang_or_disturb_others(server):  # noqa: F811
    tally = Tally()

    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(SEQUENCES)
    def one(frames):
        asyncio.run(run_sequence(server.url, TOKEN, frames, tally))
        assert not tally.failures, tally.failures

    with Bystander(server.url, TOKEN) as bystander:
        one()
    assert bystander.failure is None and bystander.latencies_ms
    assert tally.frames > 1000 and tally.alive > tally.sequences // 2, tally
    assert tally.errors["invalid_json"] and tally.errors["invalid_event"], tally.errors
    deadline = time.monotonic() + 15
    while server.app.connections and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not server.app.connections, "sessions left behind after their clients left"


def test_text_frames_that_are_not_utf8_close_with_1007_and_others_go_on(server):  # noqa: F811
    """Found by this fuzzer: a lone surrogate is not UTF-8, in either direction. A client
    that sends one gets the WebSocket close 1007; one that escapes it in JSON gets
    invalid_json (tests/test_fuzz_protocol.py); nobody else notices."""
    tally = Tally()
    frames = ['{"type": "ping", "event_id": "\ud951"}']  # a raw surrogate, not an escape
    with Bystander(server.url, TOKEN) as bystander:
        asyncio.run(run_sequence(server.url, TOKEN, frames, tally))
        asyncio.run(run_sequence(server.url, TOKEN, ['{"type": "ping", "event_id": "\\udd0f"}'], tally))
    assert tally.closes == {1007: 1} and tally.alive == 1 and tally.errors["invalid_json"] == 1, tally
    assert not tally.failures and bystander.failure is None and bystander.latencies_ms
