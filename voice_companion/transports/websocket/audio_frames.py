"""Binary audio frames of `/v1/realtime` v1 (docs/protocol.md, "Audio").

Upstream frames are bare PCM16 LE (what a browser's AudioWorklet produces);
downstream frames carry a 12-byte header naming the reply and the frame number,
so a client can drop the audio of an interrupted reply and spot a gap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from voice_companion.transports.websocket.protocol import MAX_AUDIO_BYTES, PROTOCOL_VERSION, ProtocolError

HEADER = struct.Struct("<2sBBII")  # magic "VC", version, kind, audio id, sequence
MAGIC = b"VC"
KIND_AUDIO = 1


def parse_audio(data: bytes) -> np.ndarray:
    """One upstream binary frame (PCM16 LE mono, no header) → int16 samples."""
    if len(data) > MAX_AUDIO_BYTES:
        raise ProtocolError(
            "message_too_large", f"audio frames are limited to {MAX_AUDIO_BYTES} bytes; send 20-100 ms each"
        )
    if len(data) % 2:
        raise ProtocolError("invalid_audio", f"audio frames carry whole PCM16 samples; got {len(data)} bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


@dataclass(frozen=True, eq=False)
class AudioFrame:
    audio_id: int
    seq: int
    samples: np.ndarray  # int16


def encode_audio(audio_id: int, seq: int, samples: np.ndarray) -> bytes:
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, KIND_AUDIO, audio_id, seq) + samples.astype("<i2").tobytes()


def decode_audio(data: bytes) -> AudioFrame:
    """A downstream binary frame (used by clients)."""
    if len(data) < HEADER.size or (len(data) - HEADER.size) % 2:
        raise ValueError(f"audio frame of {len(data)} bytes is not a header plus PCM16 samples")
    magic, version, kind, audio_id, seq = HEADER.unpack_from(data)
    if magic != MAGIC or version != PROTOCOL_VERSION or kind != KIND_AUDIO:
        raise ValueError(f"unknown frame header {data[:4]!r}")
    return AudioFrame(audio_id, seq, np.frombuffer(data, dtype="<i2", offset=HEADER.size).astype(np.int16))
