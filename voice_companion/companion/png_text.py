"""Text chunks of a PNG file, read with the standard library.

Character cards hide their JSON in a PNG's `tEXt` chunk (`chara` for V2, `ccv3` for
V3); reading chunks needs no image library, only the PNG container format.
"""

from __future__ import annotations

import struct
import zlib

from voice_companion.core.errors import PersonaError

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def text_chunks(data: bytes, source: str = "PNG") -> dict[str, str]:
    """keyword -> text for every tEXt, zTXt and iTXt chunk; a damaged file is an error."""
    if not is_png(data):
        raise PersonaError(f"{source} is not a PNG file")
    out: dict[str, str] = {}
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise PersonaError(f"{source}: the PNG is truncated (a chunk header is cut off)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise PersonaError(f"{source}: the PNG is truncated (chunk {kind!r} is cut off)")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise PersonaError(f"{source}: the PNG is damaged (bad checksum in chunk {kind!r})")
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword, text = _decode(kind, body, source)
            out[keyword] = text
        if kind == b"IEND":
            break
        pos += 12 + length
    return out


def _decode(kind: bytes, body: bytes, source: str) -> tuple[str, str]:
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        raise PersonaError(f"{source}: a {kind.decode()} chunk has no keyword")
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return keyword.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
        compressed, rest = rest[0], rest[2:]  # iTXt: flag, method, language\0, translated\0, text
        _, _, rest = rest.partition(b"\0")
        _, _, text = rest.partition(b"\0")
        return keyword.decode("latin-1"), (zlib.decompress(text) if compressed else text).decode("utf-8")
    except (zlib.error, UnicodeDecodeError, IndexError) as exc:
        raise PersonaError(f"{source}: unreadable {kind.decode()} chunk ({exc})") from None
