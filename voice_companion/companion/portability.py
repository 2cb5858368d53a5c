"""A whole companion as one file: persona, memories, history and voice, to move or keep.

The file is a zip a person can open: `manifest.json`, `persona.toml` (our format),
`memory.json` (every session, turn and memory as plain rows) and, if it has one, its
picture (`picture.png` or another image type). Nothing in it depends on
a model, so the companion survives any model being retired.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
import zipfile
from pathlib import Path

from voice_companion.companion import persona as persona_format
from voice_companion.companion.cards import picture_kind
from voice_companion.companion.companion import Companion, open_store
from voice_companion.companion.library import PICTURE_STEM, Library, slug
from voice_companion.core.errors import CompanionError, PersonaError

FORMAT = "voice-companion/companion"
VERSION = 1


def export_companion(companion: Companion, path: str | Path) -> dict:
    """Write the companion to `path` (owner-only: it holds private conversations)."""
    path = Path(path)
    rows = companion.store.export_rows()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "id": companion.id,
        "name": companion.persona.name,
        "voice": companion.persona.voice.name,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {table: len(items) for table, items in rows.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        archive.writestr("persona.toml", persona_format.to_toml(companion.persona))
        archive.writestr("memory.json", json.dumps(rows, ensure_ascii=False))
        if companion.picture is not None:
            archive.write(companion.picture, companion.picture.name)
    os.replace(tmp, path)
    return manifest


def import_companion(
    data_dir: Path, path: str | Path, name: str | None = None, replace: bool = False, database_url: str = ""
) -> dict:
    """Recreate an exported companion (under `name` if given) in this data directory."""
    path = Path(path)
    manifest, persona_text, rows, picture = _read(path)
    persona = persona_format.from_dict(tomllib.loads(persona_text), f"{path.name}:persona.toml")
    library = Library(data_dir)
    cid = slug(name or str(manifest.get("id") or "") or persona.name)
    if cid in library.installed() and not replace:
        raise CompanionError(f"a companion {cid!r} already exists here; import with --as NEW_NAME, or --replace it")
    library.install(persona, cid, replace=True)
    if picture is not None and (kind := picture_kind(picture)):
        library.set_picture(cid, picture, kind)
    store = open_store(database_url, cid, library.directory(cid))
    try:
        store.forget_all()
        store.import_rows(rows)
    finally:
        store.close()
    if library.active() is None:
        library.set_active(cid)
    return {"id": cid, "name": persona.name, "counts": {t: len(r) for t, r in rows.items()}}


def _read(path: Path) -> tuple[dict, str, dict, bytes | None]:
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise CompanionError(f"{path.name} is not a voice-companion export (format {manifest.get('format')!r})")
            if manifest.get("version", 0) > VERSION:
                raise CompanionError(f"{path.name} comes from a newer voice-companion; update to import it")
            pictures = [n for n in archive.namelist() if n.startswith(f"{PICTURE_STEM}.")]
            return (
                manifest,
                archive.read("persona.toml").decode("utf-8"),
                json.loads(archive.read("memory.json")),
                archive.read(pictures[0]) if pictures else None,
            )
    except FileNotFoundError:
        raise CompanionError(f"file not found: {path}") from None
    except zipfile.BadZipFile:
        raise CompanionError(f"{path.name} is not a voice-companion export (not a zip file)") from None
    except KeyError as exc:
        raise CompanionError(f"{path.name} is incomplete: {exc.args[0]} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PersonaError(f"{path.name} is damaged ({exc})") from None
