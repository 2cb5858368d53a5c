"""Property tests of the wire parser: whatever a client sends, the answer is a typed event
or a `ProtocolError` with a documented code, never another exception (a crash would
close the caller's socket with 1011 instead of an `error` event). The long run on
record is `scripts/fuzz_server.py`; this is its short version."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fuzz_frames import BINARY_FRAMES, EVENTS, TEXT_FRAMES
from hypothesis import HealthCheck, given, settings

from voice_companion.transports.websocket import protocol as p
from voice_companion.transports.websocket.audio_frames import parse_audio

FAST = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def check_text(frame: str) -> None:
    try:
        event = p.parse_text(frame)
    except p.ProtocolError as exc:
        assert exc.code in p.ERROR_CODES and exc.message
        assert exc.event_id is None or isinstance(exc.event_id, str)
        return
    assert isinstance(event, p.ClientEvent.__args__)
    if isinstance(event, p.ItemCreate):
        assert 0 < len(event.text) <= p.MAX_INPUT_TEXT_CHARS
    if isinstance(event, p.SessionUpdate) and event.input_rate is not None:
        assert p.MIN_RATE <= event.input_rate <= p.MAX_RATE
    if isinstance(event, (p.Truncate, p.PlaybackMark)):
        value = event.audio_end_ms if isinstance(event, p.Truncate) else event.played_ms
        assert value >= 0 and np.isfinite(value)


@FAST
@given(TEXT_FRAMES)
def test_any_text_frame_is_an_event_or_a_documented_error(frame):
    check_text(frame)


@FAST
@given(EVENTS)
def test_event_shaped_json_is_an_event_or_a_documented_error(event):
    check_text(json.dumps(event))


@FAST
@given(BINARY_FRAMES)
def test_any_binary_frame_is_samples_or_a_documented_error(frame):
    try:
        samples = parse_audio(frame)
    except p.ProtocolError as exc:
        assert exc.code in ("invalid_audio", "message_too_large")
        assert len(frame) % 2 or len(frame) > p.MAX_AUDIO_BYTES
        return
    assert samples.dtype == np.int16 and len(samples) * 2 == len(frame) <= p.MAX_AUDIO_BYTES


def test_lone_surrogate_escapes_are_invalid_json_and_never_echoed():
    """Found by the live fuzzer: `"\\udd0f"` is valid JSON, but the string it makes cannot
    be sent back as UTF-8, and the reply that quoted it broke the connection."""
    for frame in (
        '{"type": "ping", "event_id": "\\udd0f"}',
        '{"type": "\\ud800x"}',
        '{"type": "conversation.item.create", "item": {"type": "message", "role": "user", '
        '"content": [{"type": "input_text", "text": "hi \\udfff"}]}}',
    ):
        with pytest.raises(p.ProtocolError) as caught:
            p.parse_text(frame)
        assert caught.value.code == "invalid_json" and caught.value.event_id is None
        p.encode(p.error_event(caught.value.code, caught.value.message)).encode("utf-8")
    assert p.parse_text('{"type": "ping", "event_id": "\\ud83d\\ude00"}').event_id == "\U0001f600"  # a pair is fine
    assert "\\udd0f" in p.encode({"type": "x", "text": "\udd0f"})  # escaped, never raw


def test_integers_beyond_pythons_digit_limit_are_invalid_json_not_a_crash():
    """Found by the fuzzer: json.loads raises ValueError (not JSONDecodeError) past 4300 digits."""
    for frame in ('{"type": "ping", "n": ' + "1" * 5000 + "}", "[" * 100_000):
        try:
            p.parse_text(frame)
        except p.ProtocolError as exc:
            assert exc.code in ("invalid_json", "message_too_large")
        else:
            raise AssertionError("accepted")
