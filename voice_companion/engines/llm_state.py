"""A prompt prefix's LLM state on disk, so a returning user's session starts warm.

Why: on the 2-core reference machine the `small` brain prefills ~56 tokens/s cold, so
a companion's 1,000-2,000-token prompt (persona, what it knows, recent turns) cost
20-40 s before the first word of every new session (docs/benchmarks.md). llama.cpp
can write a slot's KV cache to a file and read it back: 969 tokens of `small` are a
28 MB file restored in ~6 ms.

A state is a pair of files in the companion's owner-only folder, one pair per model
(switching brains back and forth stays warm):

    llm-state/<model key>.bin    llama.cpp's slot file (tokens + KV cache)
    llm-state/<model key>.json   what it is: model, prefix digest, tokens, sha256, size

It is used only when the model and the exact prefix match and the file's checksum is
right; anything else is refused with one log line and the prompt is prefilled cold.
It is a cache: `export` leaves it out, and `memory forget` deletes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)
FORMAT = 1
FOLDER = "llm-state"


@dataclass(frozen=True)
class StateMeta:
    model: str  # the model file's identity (llm_llamacpp.model_identity)
    prefix: str  # sha256 of the rendered prompt prefix: the same text gives the same tokens
    tokens: int
    sha256: str  # of the .bin file
    size: int
    format: int = FORMAT


def folder(companion_dir: Path) -> Path:
    return companion_dir / FOLDER


def paths(state_dir: Path, model: str) -> tuple[Path, Path]:
    key = hashlib.sha256(model.encode()).hexdigest()[:16]
    return state_dir / f"{key}.bin", state_dir / f"{key}.json"


def prefix_digest(rendered_prompt: str) -> str:
    return hashlib.sha256(rendered_prompt.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def usable(state_dir: Path, model: str, prefix: str) -> Path | None:
    """The state file for exactly this model and prefix, checked; None (and why, once) otherwise."""
    data, meta_path = paths(state_dir, model)
    if not meta_path.exists():
        return None
    try:
        meta = StateMeta(**json.loads(meta_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        log.warning(
            "ignoring the saved LLM state %s: unreadable description (%s); preparing the prompt cold",
            meta_path.name,
            exc,
        )
        return None
    if meta.format != FORMAT or meta.model != model:
        log.info("the saved LLM state is for another model or format; preparing the prompt cold")
        return None
    if meta.prefix != prefix:
        log.info("the saved LLM state is for another prompt (the memory changed); preparing the prompt cold")
        return None
    try:
        intact = data.stat().st_size == meta.size and file_sha256(data) == meta.sha256
    except OSError:
        intact = False
    if not intact:
        log.warning(
            "ignoring the saved LLM state %s: the file is missing, truncated or corrupt; preparing the prompt cold",
            data.name,
        )
        return None
    return data


def install(state_dir: Path, model: str, produced: Path, prefix: str, tokens: int) -> Path:
    """Move a freshly written slot file into place (owner-only) and describe it; atomic per file."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    data, meta_path = paths(state_dir, model)
    os.chmod(produced, 0o600)
    meta_path.unlink(missing_ok=True)  # never a description beside the wrong data
    tmp = data.with_name(data.name + ".tmp")
    shutil.move(produced, tmp)
    os.replace(tmp, data)
    meta = StateMeta(model, prefix, tokens, file_sha256(data), data.stat().st_size)
    fd = os.open(meta_path.with_name(meta_path.name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(meta), f)
    os.replace(meta_path.with_name(meta_path.name + ".tmp"), meta_path)
    return data


def remove(state_dir: Path) -> int:
    """Delete every saved state (memory forget); returns how many files went."""
    if not state_dir.is_dir():
        return 0
    count = 0
    for path in state_dir.iterdir():
        path.unlink(missing_ok=True)
        count += 1
    state_dir.rmdir()
    return count
