"""Character Card V2/V3 (SillyTavern and friends) to and from our persona format.

Cards come as JSON (`spec: chara_card_v2|chara_card_v3`) or as PNG images with the
JSON base64-encoded in a `chara` (V2) or `ccv3` (V3) text chunk. Fields we have no
place for are dropped; our own settings travel in `extensions.voice_companion`.
The card's picture (the PNG itself, or a V3 `icon` asset given as a data: URI) becomes
the companion's picture on the call screen (`card_picture`).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from voice_companion.companion import persona as persona_format
from voice_companion.companion.persona import LoreEntry, Persona
from voice_companion.companion.png_text import is_png, text_chunks
from voice_companion.core.errors import PersonaError

SPECS = {"chara_card_v2": "2.0", "chara_card_v3": "3.0"}
EXTENSION = "voice_companion"
OUR_EXTRAS = ("speaking_style", "boundaries", "language", "voice", "voices")


def load_persona_file(path: str | Path) -> Persona:
    """Our TOML, a card's JSON or a card PNG, told apart by content, not by name."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PersonaError(f"persona file not found: {path}") from None
    except OSError as exc:
        raise PersonaError(f"cannot read {path}: {exc.strerror}") from None
    if is_png(data):
        return from_card(_card_from_png(data, path.name), path.name)
    if path.suffix.lower() == ".toml":
        return persona_format.load_toml(path)
    try:
        card = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PersonaError(f"{path.name} is neither a persona TOML, a card JSON nor a card PNG ({exc})") from None
    return from_card(card, path.name)


PICTURE_TYPES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg", b"RIFF": "webp", b"GIF8": "gif"}
MAX_PICTURE_BYTES = 8 * 1024 * 1024  # a card's picture, not a photo album


def picture_kind(data: bytes) -> str | None:
    """ "png", "jpg", "webp" or "gif" by the file's first bytes; None for anything else."""
    for magic, kind in PICTURE_TYPES.items():
        if data.startswith(magic) and (kind != "webp" or data[8:12] == b"WEBP"):
            return kind
    return None


def card_picture(path: str | Path) -> bytes | None:
    """The picture a card file carries: a PNG card is its own picture; a V3 JSON card's
    main `icon` asset when it is embedded as a data: URI (a URL would need the network).
    None when there is none or it is unusable (the import goes on without one)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if is_png(data):
        return data if len(data) <= MAX_PICTURE_BYTES else None
    try:
        card = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    fields = card.get("data") if isinstance(card, dict) else None
    assets = fields.get("assets") if isinstance(fields, dict) else None
    icons: list[dict] = (
        [a for a in assets if isinstance(a, dict) and a.get("type") == "icon"] if isinstance(assets, list) else []
    )
    icons.sort(key=lambda a: a.get("name") != "main")  # the main icon first
    for icon in icons:
        uri = icon.get("uri")
        if isinstance(uri, str) and uri.startswith("data:image/") and ";base64," in uri:
            try:
                picture = base64.b64decode(uri.split(",", 1)[1], validate=True)
            except binascii.Error:
                continue
            if picture_kind(picture) and len(picture) <= MAX_PICTURE_BYTES:
                return picture
    return None


def _card_from_png(data: bytes, source: str) -> Any:
    chunks = text_chunks(data, source)
    keyword = "ccv3" if "ccv3" in chunks else "chara" if "chara" in chunks else None
    if keyword is None:
        raise PersonaError(f"{source}: this PNG holds no character card (no 'chara' or 'ccv3' text chunk)")
    try:
        return json.loads(base64.b64decode(chunks[keyword], validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise PersonaError(f"{source}: the '{keyword}' chunk is not base64-encoded card JSON") from None


def from_card(card: Any, source: str) -> Persona:
    """A V2/V3 card (parsed JSON) as a persona; a malformed one is a one-line error."""
    if not isinstance(card, dict):
        raise PersonaError(f"{source}: a character card is a JSON object")
    spec = card.get("spec")
    if spec not in SPECS:
        raise PersonaError(f"{source}: unsupported card spec {spec!r}; expected chara_card_v2 or chara_card_v3")
    data = card.get("data")
    if not isinstance(data, dict):
        raise PersonaError(f"{source}: the card has no 'data' object")
    text = lambda key: _text(data, key, source)  # noqa: E731
    if not text("name").strip():
        raise PersonaError(f"{source}: the card has no name (data.name)")
    instructions = "\n".join(
        t
        for t in (text("system_prompt").replace("{{original}}", "").strip(), text("post_history_instructions").strip())
        if t
    )
    fields: dict[str, Any] = {
        "name": text("name").strip(),
        "description": text("description"),
        "personality": text("personality"),
        "scenario": text("scenario"),
        "greeting": text("first_mes"),
        "example_dialogue": text("mes_example"),
        "instructions": instructions,
    }
    extensions = data.get("extensions", {})
    if not isinstance(extensions, dict):
        raise PersonaError(f"{source}: data.extensions must be an object")
    ours = extensions.get(EXTENSION, {})
    if not isinstance(ours, dict):
        raise PersonaError(f"{source}: extensions.{EXTENSION} must be an object")
    fields.update({k: v for k, v in ours.items() if k in OUR_EXTRAS})
    persona = persona_format.from_dict({k: v for k, v in fields.items() if v != ""}, source)
    persona.lore = _book(data.get("character_book"), source)
    return persona


def _text(data: dict, key: str, source: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PersonaError(f"{source}: data.{key} must be text, got {type(value).__name__}")
    return value


def _book(book: Any, source: str) -> list[LoreEntry]:
    """Enabled `character_book` entries, in insertion order, as lore."""
    if book is None:
        return []
    entries = book.get("entries") if isinstance(book, dict) else None
    if not isinstance(entries, list):
        raise PersonaError(f"{source}: data.character_book needs an 'entries' list")
    lore = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise PersonaError(f"{source}: character_book entry {i} has no text 'content'")
        keys = entry.get("keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise PersonaError(f"{source}: character_book entry {i}: 'keys' must be a list of text")
        if entry.get("enabled", True) and entry["content"].strip():
            lore.append((entry.get("insertion_order", 0), i, LoreEntry(entry["content"].strip(), keys)))
    return [item for _, _, item in sorted(lore, key=lambda t: (_number(t[0]), t[1]))]


def _number(value: Any) -> float:
    return value if isinstance(value, (int, float)) else 0


def to_card(persona: Persona) -> dict[str, Any]:
    """A Character Card V3 JSON object; other apps read it, we read it back losslessly."""
    ours = {k: v for k, v in persona_format.to_dict(persona).items() if k in OUR_EXTRAS}
    book = {
        "name": f"{persona.name} lore",
        "extensions": {},
        "entries": [
            {
                "keys": e.keys,
                "content": e.content,
                "extensions": {},
                "enabled": True,
                "insertion_order": i,
                "use_regex": False,
            }
            for i, e in enumerate(persona.lore)
        ],
    }
    data = {
        "name": persona.name,
        "description": persona.description,
        "personality": persona.personality,
        "scenario": persona.scenario,
        "first_mes": persona.greeting,
        "mes_example": persona.example_dialogue,
        "creator_notes": "",
        "system_prompt": persona.instructions,
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": [],
        "creator": "",
        "character_version": "",
        "group_only_greetings": [],
        "extensions": {EXTENSION: ours},
    }
    if persona.lore:
        data["character_book"] = book
    return {"spec": "chara_card_v3", "spec_version": SPECS["chara_card_v3"], "data": data}
