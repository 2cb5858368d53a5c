"""PNG files made by the PNG spec (signature, IHDR, text chunks, IDAT, IEND), for card
and picture tests: no image library needed."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_image(width: int = 1, height: int = 1, chunks: dict[str, str] | None = None) -> bytes:
    """An RGB picture (a diagonal gradient, so a screenshot shows it) with tEXt chunks."""
    rows = b"".join(
        b"\0" + b"".join(bytes(((x * 255) // width, (y * 255) // height, 160)) for x in range(width))
        for y in range(height)
    )
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    for keyword, text in (chunks or {}).items():
        out += _chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))
    return out + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
