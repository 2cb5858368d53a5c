"""The realtime protocol's parsing, encoding, auth and TLS helpers (no models, no sockets)."""

from __future__ import annotations

import json
import ssl

import numpy as np
import pytest

from voice_companion.transports.websocket import audio_frames as frames
from voice_companion.transports.websocket import auth, tls
from voice_companion.transports.websocket import protocol as p
from voice_companion.transports.websocket.client import realtime_url, speech_end


def parse_error(data: str) -> str:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_text(data)
    return info.value.code


def test_client_events_parse_into_typed_events():
    update = p.parse_text(
        json.dumps(
            {
                "type": "session.update",
                "event_id": "e1",
                "session": {
                    "instructions": "Be brief.",
                    "audio": {
                        "input": {"format": {"type": "audio/pcm", "rate": 48000}},
                        "output": {"voice": "en_US-joe-medium"},
                    },
                },
            }
        )
    )
    assert update == p.SessionUpdate("e1", 48000, "en_US-joe-medium", "Be brief.")
    item = p.parse_text(
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": " Hi there "}]},
            }
        )
    )
    assert item == p.ItemCreate(None, "Hi there")
    assert p.parse_text('{"type": "response.create"}') == p.ResponseCreate(None)
    truncate = p.parse_text(
        json.dumps(
            {"type": "conversation.item.truncate", "item_id": "resp_1", "content_index": 0, "audio_end_ms": 1500}
        )
    )
    assert truncate == p.Truncate(None, "resp_1", 1500.0)
    assert p.parse_text('{"type": "playback.mark", "response_id": "r", "played_ms": 20.5}') == p.PlaybackMark(
        None, "r", 20.5
    )
    assert p.parse_text('{"type": "ping", "event_id": "x"}') == p.Ping("x")


@pytest.mark.parametrize(
    "data, code",
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"hello"', "invalid_json"),
        ('{"no": "type"}', "unknown_event"),
        ('{"type": "input_audio_buffer.append", "audio": "AAAA"}', "unknown_event"),
        ('{"type": 7}', "unknown_event"),
        ('{"type": "session.update"}', "invalid_event"),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": {"rate": 4000}}}}}',
            "invalid_sample_rate",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": {"rate": "16000"}}}}}',
            "invalid_sample_rate",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": {"rate": true}}}}}',
            "invalid_sample_rate",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}',
            "invalid_event",
        ),
        ('{"type": "conversation.item.create", "item": {"role": "assistant", "content": []}}', "invalid_event"),
        (
            '{"type": "conversation.item.create", "item": {"role": "user", "content": [{"type": "input_text"}]}}',
            "invalid_event",
        ),
        ('{"type": "conversation.item.truncate", "item_id": "r", "audio_end_ms": -5}', "invalid_event"),
        ('{"type": "conversation.item.truncate", "item_id": "r", "audio_end_ms": NaN}', "invalid_event"),
        ('{"type": "conversation.item.truncate", "audio_end_ms": 5}', "invalid_event"),
        ("[" * 100_000 + "]" * 100_000, "message_too_large"),
        ('{"type": "ping", "pad": "' + "x" * p.MAX_TEXT_BYTES + '"}', "message_too_large"),
    ],
)
def test_malformed_text_frames_get_documented_codes(data, code):
    assert parse_error(data) == code
    assert code in p.ERROR_CODES


def test_deeply_nested_json_is_an_error_not_a_crash():
    assert parse_error("[" * 20_000 + "]" * 20_000) == "invalid_json"


def test_event_id_is_echoed_in_errors():
    with pytest.raises(p.ProtocolError) as info:
        p.parse_text('{"type": "conversation.item.truncate", "event_id": "ev9", "item_id": 3, "audio_end_ms": 1}')
    assert info.value.event_id == "ev9"
    assert p.error_event(info.value.code, "m", "ev9")["event_id"] == "ev9"


def test_audio_frames_round_trip_and_reject_bad_sizes():
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert np.array_equal(frames.parse_audio(samples.astype("<i2").tobytes()), samples)
    for bad, code in [(b"\x00" * 3, "invalid_audio"), (b"\x00" * (p.MAX_AUDIO_BYTES + 2), "message_too_large")]:
        with pytest.raises(p.ProtocolError) as info:
            frames.parse_audio(bad)
        assert info.value.code == code
    frame = frames.encode_audio(7, 3, samples)
    assert frame[:4] == b"VC\x01\x01" and len(frame) == frames.HEADER.size + 2 * len(samples)
    decoded = frames.decode_audio(frame)
    assert (decoded.audio_id, decoded.seq) == (7, 3) and np.array_equal(decoded.samples, samples)
    with pytest.raises(ValueError):
        frames.decode_audio(b"XX" + frame[2:])


def test_token_is_generated_once_owner_only_and_compared_in_constant_time(tmp_path):
    token = auth.load_or_create_token(tmp_path)
    assert len(token) >= auth.MIN_TOKEN_CHARS
    assert (tmp_path / auth.TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    assert auth.load_or_create_token(tmp_path) == token
    other = token[:-1] + ("y" if token.endswith("x") else "x")  # one character off (a token may end in x)
    assert auth.is_authorized(token, token) and not auth.is_authorized(token, other)
    assert not auth.is_authorized(token, None) and auth.is_authorized(None, None)
    assert auth.presented_token("/v1/realtime?token=abc", None) == "abc"
    assert auth.presented_token("/v1/realtime", "Bearer xyz") == "xyz"
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do
        auth.check_token("short")


def test_self_signed_certificate_is_kept_and_verifies(tmp_path):
    cert = tls.self_signed(tmp_path, ["localhost", "127.0.0.1"])
    assert (cert.key.stat().st_mode & 0o777) == 0o600
    again = tls.self_signed(tmp_path, ["localhost", "127.0.0.1"])
    assert again.fingerprint == cert.fingerprint  # reused: the phone accepts it once
    other = tls.self_signed(tmp_path, ["localhost", "127.0.0.1", "192.0.2.7"])
    assert other.fingerprint != cert.fingerprint  # a new address needs a new certificate
    tls.server_context(other.cert, other.key)
    ssl.create_default_context(cafile=str(other.cert))


def test_client_accepts_the_page_url_serve_prints():
    assert realtime_url("https://192.0.2.7:8765/#token=abc") == ("wss://192.0.2.7:8765/v1/realtime", "abc")
    assert realtime_url("ws://127.0.0.1:9/v1/realtime") == ("ws://127.0.0.1:9/v1/realtime", None)
    assert realtime_url("127.0.0.1:9") == ("ws://127.0.0.1:9/v1/realtime", None)


def test_speech_end_ignores_trailing_silence():
    pcm = np.concatenate([np.full(3200, 8000, dtype=np.int16), np.zeros(1600, dtype=np.int16)])
    assert speech_end(pcm) == 3200
