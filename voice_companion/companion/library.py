"""Companions on disk: one owner-only folder per companion in the data directory.

    DATA/companions/<id>/persona.toml   who it is (our format, editable by hand)
    DATA/companions/<id>/memory.db      what it remembers (SQLite, WAL)
    DATA/companions/<id>/picture.<ext>  its picture, from an imported card (optional)
    DATA/companions/active              which one `persona use` chose

Bundled personas (companion/personas/*.toml) are copied in on first use, so the
user's copy can change while the package's stays as shipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from voice_companion.companion import persona as persona_format
from voice_companion.companion.persona import Persona
from voice_companion.core.errors import PersonaError

BUNDLED_DIR = Path(__file__).parent / "personas"
DEFAULT_ID = "mia"
PERSONA_FILE = "persona.toml"
MEMORY_FILE = "memory.db"
PICTURE_STEM = "picture"
PICTURE_EXTENSIONS = ("png", "jpg", "webp", "gif")


def slug(name: str) -> str:
    """A folder name from a persona name; Chinese names stay as they are."""
    return re.sub(r"[^\w-]+", "-", name.strip().lower()).strip("-_") or "companion"


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, content: str | bytes) -> None:
    """Owner-only from the first byte; replaced atomically."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def picture_in(folder: Path) -> Path | None:
    """The picture file in a companion's folder, if there is one."""
    return next((p for e in PICTURE_EXTENSIONS if (p := folder / f"{PICTURE_STEM}.{e}").is_file()), None)


class Library:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "companions"

    def bundled(self) -> dict[str, Path]:
        return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.toml"))}

    def installed(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if (d / PERSONA_FILE).is_file())

    def ids(self) -> list[str]:
        return list(dict.fromkeys([*self.installed(), *self.bundled()]))

    def find(self, name: str) -> str | None:
        """An id, or a persona name (any case), among installed and bundled companions."""
        if name in self.ids():
            return name
        wanted = name.strip().casefold()
        for cid in self.ids():
            if cid.casefold() == wanted or self.persona(cid).name.casefold() == wanted:
                return cid
        return None

    def require(self, name: str) -> str:
        cid = self.find(name)
        if cid is None:
            raise PersonaError(f"no companion named {name!r}; `voice-companion persona list` shows them")
        return cid

    def persona(self, cid: str) -> Persona:
        path = self.root / cid / PERSONA_FILE
        if path.is_file():
            return persona_format.load_toml(path)
        if cid in self.bundled():
            return persona_format.load_toml(self.bundled()[cid])
        raise PersonaError(f"no companion named {cid!r}; `voice-companion persona list` shows them")

    def directory(self, cid: str) -> Path:
        """The companion's folder, installing a bundled persona on first use."""
        folder = self._folder(cid)
        if not (folder / PERSONA_FILE).is_file():
            write_private(folder / PERSONA_FILE, persona_format.to_toml(self.persona(cid)))
        return folder

    def install(self, persona: Persona, cid: str | None = None, replace: bool = False) -> str:
        cid = cid or slug(persona.name)
        if cid in self.installed() and not replace:
            raise PersonaError(f"a companion {cid!r} already exists; choose another name or remove it first")
        folder = self._folder(cid)
        write_private(folder / PERSONA_FILE, persona_format.to_toml(persona))
        return cid

    def picture(self, cid: str) -> Path | None:
        """The companion's picture file, if it has one."""
        return picture_in(self.root / cid)

    def set_picture(self, cid: str, data: bytes, kind: str) -> Path:
        """Keep `data` (a `kind` image: png, jpg, webp, gif) as the companion's picture,
        owner-only like the rest of its folder; an older picture of another type goes."""
        if kind not in PICTURE_EXTENSIONS:
            raise PersonaError(f"a companion's picture must be one of {', '.join(PICTURE_EXTENSIONS)}, not {kind!r}")
        folder = self._folder(cid)
        for extension in PICTURE_EXTENSIONS:
            (folder / f"{PICTURE_STEM}.{extension}").unlink(missing_ok=True)
        path = folder / f"{PICTURE_STEM}.{kind}"
        write_private(path, data)
        return path

    def _folder(self, cid: str) -> Path:
        for path in (self.data_dir, self.root):
            private_dir(path)
        return private_dir(self.root / cid)

    def active(self) -> str | None:
        path = self.root / "active"
        cid = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        return cid if cid and cid in self.ids() else None

    def set_active(self, cid: str) -> None:
        self.directory(cid)
        write_private(self.root / "active", cid + "\n")
