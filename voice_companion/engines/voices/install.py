"""Install, find and remove catalog voices in the model cache, never leaving half a voice.

A voice is two files (model and config). Both download into a hidden staging folder
(`.ID.download/`, each resumable as `NAME.part` by download.py), are checked by size,
sha256 (pinned, else the Hub's X-Linked-Etag) and md5 where the catalog has one, and
only then is the folder renamed to `ID/` in one step. An interrupted download resumes
from the staging folder; a voice folder that exists is always complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from voice_companion.core.errors import CompanionError, DownloadError, ModelNotAvailable
from voice_companion.engines.models import registry as models
from voice_companion.engines.models.download import download_file, hf_file_url
from voice_companion.engines.models.voice_catalog import Voice, find


def voice_dir(voice: Voice, models_dir: Path) -> Path:
    return models_dir / voice.id


def staging_dir(voice: Voice, models_dir: Path) -> Path:
    return models_dir / f".{voice.id}.download"


def installed_path(voice: Voice, models_dir: Path) -> Path | None:
    """The voice's .onnx when usable here (bundled package or a complete download)."""
    if voice.bundled and voice.id in models.REGISTRY:
        found = models.find_local(models.get_spec(voice.id), models_dir)
        if found is not None:
            return found
    folder = voice_dir(voice, models_dir)
    paths = [folder / f.name for f in voice.files]
    if all(p.is_file() for p in paths):
        return next(p for p in paths if p.suffix == ".onnx")
    return None


def state(voice: Voice, models_dir: Path) -> str | None:
    """'bundled', 'installed' or None."""
    if installed_path(voice, models_dir) is None:
        return None
    return "bundled" if voice.bundled and not voice_dir(voice, models_dir).is_dir() else "installed"


def install(
    voice: Voice,
    models_dir: Path,
    endpoint: str,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Download and verify every file, then move the voice into place atomically.
    `on_progress(received, total)` counts the bytes of all its files (a phone's bar)."""
    if (found := installed_path(voice, models_dir)) is not None:
        return found
    stage = staging_dir(voice, models_dir)
    total, before = sum(f.size or 0 for f in voice.files), 0
    for file in voice.files:
        url = hf_file_url(endpoint, voice.hub_repo, file.path, voice.hub_revision)
        dest = download_file(
            url,
            stage / file.name,
            sha256=file.sha256,
            size=file.size,
            progress=progress,
            description=f"{voice.id}/{file.name}",
            on_bytes=_counting(on_progress, before, total),
        )
        before += dest.stat().st_size
        if on_progress is not None:
            on_progress(before, total)
        if file.md5 and _md5(dest) != file.md5:
            dest.unlink()
            raise DownloadError(
                f"checksum mismatch for {voice.id}/{file.name}: its md5 is not the catalog's "
                f"{file.md5}; the file on the server changed — retry, or report it"
            )
    _check_loads(voice, stage)
    target = voice_dir(voice, models_dir)
    if target.exists():
        shutil.rmtree(target)
    os.replace(stage, target)
    return target / next(f.name for f in voice.files if f.name.endswith(".onnx"))


def _counting(on_progress: Callable[[int, int], None] | None, before: int, total: int) -> Callable[[int], None] | None:
    """One file's byte count as the whole voice's (the files before it are done)."""
    if on_progress is None:
        return None
    return lambda got: on_progress(before + got, total)


def remove(voice: Voice, models_dir: Path) -> bool:
    """Delete a downloaded voice (and any unfinished download); False if there was none."""
    removed = False
    for folder in (voice_dir(voice, models_dir), staging_dir(voice, models_dir)):
        if folder.is_dir():
            shutil.rmtree(folder)
            removed = True
    if not removed and voice.bundled:
        raise CompanionError(f"{voice.id} comes with voice-companion (a bundled package) and cannot be removed")
    return removed


def resolve_voice(name: str, models_dir: Path) -> Path:
    """A voice name (catalog id or registered model) or an .onnx path -> the .onnx to load."""
    voice = find(name)
    if voice is not None:
        path = installed_path(voice, models_dir)
        if path is None:
            raise ModelNotAvailable(
                f"voice {name} is not installed; get it with: voice-companion voices download {name}"
            )
        return path
    if name.endswith(".onnx") and Path(name).expanduser().is_file():
        return Path(name).expanduser()
    spec = models.REGISTRY.get(name)
    if spec is None or spec.kind != "tts":
        raise ModelNotAvailable(f"unknown voice {name!r}; `voice-companion voices list` shows every voice")
    return models.resolve(spec, models_dir)


def _check_loads(voice: Voice, stage: Path) -> None:
    """A config without a checksum must at least be a Piper config of the right rate."""
    import json

    config = stage / next(f.name for f in voice.files if f.name.endswith(".json"))
    try:
        rate = int(json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        config.unlink()
        raise DownloadError(f"{config.name} is not a Piper voice config; retry, or report it") from None
    if rate != voice.sample_rate:
        config.unlink()
        raise DownloadError(f"{config.name} says {rate} Hz, the catalog {voice.sample_rate} Hz; retry, or report it")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
