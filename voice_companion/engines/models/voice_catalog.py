"""The voice catalog (`engines/models/voice_catalog.json`): which Piper voices exist and how to fetch them.

Plain data the user can read and review: per voice its language, gender, quality and
rate; per file its path on the Hub, size and checksums (null where none could be
trusted, see voices/README.md). Each voice also becomes a `models.ModelSpec`, so every
place that resolves a model (config `tts.voice`, personas, `say --voice`) finds it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voice_companion.core.errors import ConfigError, ModelNotAvailable

if TYPE_CHECKING:
    from voice_companion.engines.models.spec import ModelSpec

CATALOG_ENV = "VOICE_COMPANION_VOICE_CATALOG"  # another catalog file (tests, private mirrors)
_DEFAULT = Path(__file__).with_name("voice_catalog.json")


@dataclass(frozen=True)
class VoiceFile:
    path: str  # inside the Hub repo
    size: int | None
    sha256: str | None
    md5: str | None = None
    checksum_source: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Voice:
    id: str
    language: str  # "en_US", "zh_CN", "fr_FR"
    name: str
    gender: str
    quality: str
    sample_rate: int
    files: tuple[VoiceFile, ...]
    speakers: tuple[str, ...] = ()
    bundled: bool = False
    hub_repo: str = ""
    hub_revision: str = ""

    @property
    def family(self) -> str:
        """ "en", "zh", "fr": what a conversation's language is compared with."""
        return language_family(self.language)

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def describe(self) -> str:
        speakers = f", {len(self.speakers)} speakers" if self.speakers else ""
        return f"Piper voice, {self.language}, {self.gender}, {self.quality} quality{speakers}"


def language_family(code: str | None) -> str:
    """ "zh_CN" / "zh-TW" / "ZH" -> "zh"; "" for none."""
    return (code or "").replace("-", "_").split("_")[0].lower()


def catalog_path() -> Path:
    return Path(os.environ.get(CATALOG_ENV) or _DEFAULT)


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Voice, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(_voice(v, data["hub_repo"], data["hub_revision"]) for v in data["voices"])
    except FileNotFoundError:
        raise ConfigError(
            f"voice catalog not found at {path}; reinstall voice-companion or set {CATALOG_ENV}"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the voice catalog {path} is malformed ({exc}); restore it from git") from None


def _voice(v: dict[str, Any], repo: str, revision: str) -> Voice:
    files = tuple(
        VoiceFile(f["path"], f.get("size"), f.get("sha256"), f.get("md5"), f.get("checksum_source", ""))
        for f in v["files"]
    )
    return Voice(
        v["id"],
        v["language"],
        v["name"],
        v["gender"],
        v["quality"],
        int(v["sample_rate"]),
        files,
        tuple(v.get("speakers", ())),
        bool(v.get("bundled", False)),
        v.get("hub_repo", repo),
        v.get("hub_revision", revision),
    )


def voices() -> tuple[Voice, ...]:
    return _load(str(catalog_path()))


def find(voice_id: str) -> Voice | None:
    return next((v for v in voices() if v.id == voice_id), None)


def get(voice_id: str) -> Voice:
    voice = find(voice_id)
    if voice is None:
        raise ModelNotAvailable(f"unknown voice {voice_id!r}; `voice-companion voices list` shows every voice")
    return voice


def for_language(family: str) -> list[Voice]:
    return [v for v in voices() if v.family == family]


def spec(voice: Voice) -> ModelSpec:
    """The voice as a model of the registry (bundled voices keep their own spec)."""
    from voice_companion.engines.models.spec import ModelFile, ModelSpec

    files = tuple(ModelFile(f.name, f.size, f.sha256, hub_path=f.path) for f in voice.files)
    return ModelSpec(
        voice.id,
        "tts",
        voice.describe(),
        files,
        hub_repo=voice.hub_repo,
        hub_revision=voice.hub_revision,
        install_hint=f"voice-companion voices download {voice.id}",
    )


def specs() -> dict[str, ModelSpec]:
    try:
        return {v.id: spec(v) for v in voices() if not v.bundled}
    except ConfigError:
        return {}  # no catalog (e.g. a wheel without it): the bundled voice still works
