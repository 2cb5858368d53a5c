"""A missing or corrupt model file is a one-line error at start, never a traceback mid-call.

onnxruntime, CTranslate2 and faster-whisper fail on a damaged file with their own
exceptions (a protobuf parse error, "unsupported binary version 3786273355"), and
faster-whisper takes a folder that does not exist for a Hugging Face repo name and
tries to download it. These checks name the file and say what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from voice_companion.core.errors import CompanionError, ModelNotAvailable

T = TypeVar("T")
WHISPER_FILES = ("model.bin", "config.json")
FIX = "delete it and install or download it again (`voice-companion models`)"


def whisper_dir(path: Path) -> Path:
    """A CTranslate2 Whisper folder with its weights and config, or ModelNotAvailable."""
    if not path.is_dir():
        raise ModelNotAvailable(
            f"speech-to-text model folder {path} does not exist; "
            f"check stt.model_path or leave it empty for the bundled model"
        )
    missing = [name for name in WHISPER_FILES if not (path / name).is_file()]
    if missing:
        raise ModelNotAvailable(
            f"speech-to-text model folder {path} lacks {', '.join(missing)}: "
            f"it is not a CTranslate2 Whisper model; {FIX}"
        )
    return path


def piper_voice(path: Path) -> Path:
    for needed in (path, Path(f"{path}.json")):
        if not needed.is_file():
            raise ModelNotAvailable(
                f"voice file {needed} does not exist; a Piper voice is a .onnx file "
                f"with its .onnx.json beside it (check tts.voice_path)"
            )
    return path


def load_checked(what: str, path: Path, build: Callable[[], T], fix: str = FIX) -> T:
    """Run `build`; any failure that is not already one of ours names the file and the fix."""
    try:
        return build()
    except CompanionError:
        raise
    except Exception as exc:  # noqa: BLE001 - each library fails in its own way on a bad file
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelNotAvailable(
            f"could not load the {what} {path}: the file is corrupt or not a {what} ({reason}); {fix}"
        ) from exc
