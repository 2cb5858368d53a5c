#!/usr/bin/env python3
"""Coverage-guided fuzzing of the wire parser with atheris (libFuzzer), where it installs.

    pip install atheris   # a wheel exists for CPython 3.11 on x86-64 Linux
    python scripts/fuzz_parser_atheris.py -runs=200000 [-max_len=70000]

Each input is split by its first byte: even → a text frame (`parse_text`, after UTF-8
decoding with replacement, as websockets hands over only valid text), odd → a binary
frame (`parse_audio`). Anything but an event, samples or a `ProtocolError` with a
documented code is a crash libFuzzer reports (and saves as crash-*). The hypothesis
runs (scripts/fuzz_server.py) generate inputs from the protocol's shapes; this one
mutates bytes towards new branches of the parser itself. Without a corpus folder on the
command line it starts from one valid frame of each kind (`json.loads` is C code that
coverage does not see, so random bytes alone would seldom get past it).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from voice_companion.transports.websocket import protocol as p
    from voice_companion.transports.websocket.audio_frames import parse_audio


def one_input(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] % 2 == 0:
            p.parse_text(data[1:].decode("utf-8", "replace"))
        else:
            samples = parse_audio(data[1:])
            assert len(samples) * 2 == len(data) - 1
    except p.ProtocolError as exc:
        assert exc.code in p.ERROR_CODES


SEEDS = [
    {
        "type": "session.update",
        "event_id": "e1",
        "session": {
            "instructions": "Be brief.",
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                "output": {"voice": "en_US-joe-medium"},
            },
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    },
    {"type": "response.create"},
    {"type": "ping", "event_id": "p"},
    {"type": "conversation.item.truncate", "item_id": "resp_1", "content_index": 0, "audio_end_ms": 700},
    {"type": "playback.mark", "response_id": "resp_1", "played_ms": 500.5},
]


def seed_corpus() -> str:
    folder = Path(tempfile.mkdtemp(prefix="atheris-seeds-"))
    for i, event in enumerate(SEEDS):
        (folder / f"text{i}").write_bytes(b"\0" + json.dumps(event).encode())
    (folder / "audio").write_bytes(b"\1" + bytes(640))
    return str(folder)


if __name__ == "__main__":
    if not any(not arg.startswith("-") for arg in sys.argv[1:]):
        sys.argv.append(seed_corpus())
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
