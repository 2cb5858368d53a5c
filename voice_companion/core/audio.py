"""Read any audio file into mono float32, resample it, and write PCM16 WAV.

Everything that can go wrong with a user's file surfaces as a one-line
`AudioInputError`, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from voice_companion.core.errors import AudioInputError

STT_RATE = 16000
"""Sample rate the speech recogniser expects."""

_READ_BLOCK_FRAMES = 1 << 20  # ~1 M frames per read keeps peak memory near the mono result
_FORMATS_HINT = "WAV, FLAC, MP3, AIFF, OGG"
# mkstemp creates files 0600; read the umask once so written WAVs get normal permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no boolean ==
class AudioClip:
    """Decoded audio at its native rate, already downmixed to mono."""

    samples: np.ndarray  # float32, shape (n,), range [-1, 1]
    sample_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _show(path: Path) -> str:
    """Path text for messages; repr() if the name itself would break the one-line rule."""
    text = str(path)
    return repr(text) if "\n" in text or "\r" in text else text


def _check_path(path: Path) -> None:
    """Catch the common file-system mistakes before libsndfile gives a vague error."""
    if not path.exists():
        raise AudioInputError(f"no such file: {_show(path)}; check the path and try again")
    if path.is_dir():
        raise AudioInputError(f"{_show(path)} is a directory, not an audio file; pass the path of a recording")
    if path.stat().st_size == 0:
        raise AudioInputError(f"{_show(path)} is empty (0 bytes); record again or pick another file")
    if not os.access(path, os.R_OK):
        raise AudioInputError(f"cannot read {_show(path)}: permission denied; check its permissions")


def _read_mono(path: Path) -> tuple[np.ndarray, int, int]:
    """Decode blockwise and downmix as we go, so a long stereo file never exists as float32 stereo."""
    try:
        with sf.SoundFile(path) as f:
            rate, channels = f.samplerate, f.channels
            out = np.empty(max(f.frames, 0), dtype=np.float32)
            filled = 0
            while True:
                block = f.read(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
                if filled + len(mono) > len(out):  # header under-reported the length: grow
                    grown = np.empty(max(2 * len(out), filled + len(mono)), np.float32)
                    grown[:filled] = out[:filled]
                    out = grown
                out[filled : filled + len(mono)] = mono
                filled += len(mono)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioInputError(
            f"{_show(path)} is not an audio file soundfile can read ({_FORMATS_HINT}); convert it to WAV and try again"
        ) from err
    return out[:filled], rate, channels


def read_audio(path: str | Path) -> AudioClip:
    """Read any format libsndfile decodes, at its own rate, downmixed to mono float32 in [-1, 1]."""
    path = Path(path)
    _check_path(path)
    try:
        samples, rate, channels = _read_mono(path)
    except OSError as err:  # raced with deletion, I/O error on the disk, ...
        raise AudioInputError(f"cannot read {_show(path)}: {err.strerror or err}; check the file") from err
    if len(samples) == 0:
        raise AudioInputError(f"{_show(path)} contains no audio frames; record again or pick another file")
    # Float files may hold NaN/inf or overshoot full scale; the contract is finite [-1, 1].
    np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(samples, -1.0, 1.0, out=samples)
    return AudioClip(samples=samples, sample_rate=rate, source_channels=channels)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr HQ; a no-op (besides dtype) when the rates match."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return samples
    resampled: np.ndarray = soxr.resample(samples, from_rate, to_rate, quality="HQ")  # soxr has no types
    return resampled.astype(np.float32, copy=False)


def load_for_stt(path: str | Path, min_duration_s: float = 0.1) -> np.ndarray:
    """16 kHz mono float32 for the recogniser; refuses clips too short to hold a word."""
    clip = read_audio(path)
    if clip.duration_s < min_duration_s:
        raise AudioInputError(
            f"{_show(Path(path))} is only {clip.duration_s:.3g} s long; "
            f"record at least {min_duration_s:.3g} s of speech"
        )
    return resample(clip.samples, clip.sample_rate, STT_RATE)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Mono int16 from int16 or float in [-1, 1], the inverse of `pcm16_to_float` (x 32768,
    so int16 / 32768 round-trips exactly); overshoot clips instead of wrapping, NaN is 0."""
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]  # sounddevice blocks are (n, channels)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples
    if not np.issubdtype(samples.dtype, np.floating):
        raise TypeError(f"expected int16 or float samples, got {samples.dtype}")
    x = np.nan_to_num(samples.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian PCM16 bytes (e.g. a microphone or websocket chunk) to float32 in [-1, 1)."""
    if len(data) % 2:
        raise AudioInputError(f"PCM16 audio has an odd byte count ({len(data)}); send whole 2-byte samples")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write PCM16 WAV atomically, so readers never see a half-written file."""
    path = Path(path)
    samples = np.asarray(samples)
    if samples.dtype != np.int16 and not np.issubdtype(samples.dtype, np.floating):
        raise TypeError(f"write_wav takes int16 or float samples, got {samples.dtype}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data = to_int16(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX only
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            sf.write(fh, data, sample_rate, subtype="PCM_16", format="WAV")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
