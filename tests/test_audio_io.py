"""Tests for voice_companion.core.audio with real files written by soundfile."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voice_companion.core import audio as aio
from voice_companion.core.audio import (
    STT_RATE,
    AudioClip,
    load_for_stt,
    pcm16_to_float,
    read_audio,
    resample,
    to_int16,
    write_wav,
)
from voice_companion.core.errors import AudioInputError

AMP = 0.5
FREQ = 440.0
HAS_MP3 = "MP3" in sf.available_formats()


def sine(rate: int, seconds: float = 1.0, freq: float = FREQ, amp: float = AMP) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def middle_rms(x: np.ndarray) -> float:
    """RMS of the middle 80%, away from resampler and codec edge transients."""
    cut = len(x) // 10
    return float(np.sqrt(np.mean(x[cut:-cut].astype(np.float64) ** 2)))


def assert_one_line_error(err: pytest.ExceptionInfo[AudioInputError]) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


# (extension, format, subtype, rate, channels, lossy)
CASES = [
    ("wav", "WAV", "PCM_16", 16000, 1, False),
    ("wav", "WAV", "PCM_U8", 8000, 1, False),
    ("wav", "WAV", "PCM_24", 44100, 1, False),
    ("wav", "WAV", "PCM_32", 48000, 2, False),
    ("wav", "WAV", "FLOAT", 22050, 1, False),
    ("wav", "WAV", "DOUBLE", 48000, 2, False),
    ("flac", "FLAC", "PCM_16", 44100, 2, False),
    ("flac", "FLAC", "PCM_24", 48000, 1, False),
    ("aiff", "AIFF", "PCM_16", 44100, 1, False),
    ("aif", "AIFF", "PCM_24", 8000, 2, False),
    ("ogg", "OGG", "VORBIS", 48000, 2, True),
    ("ogg", "OGG", "VORBIS", 16000, 1, True),
]
MP3_CASES = [
    ("mp3", "MP3", "MPEG_LAYER_III", 44100, 1, True),
    ("mp3", "MP3", "MPEG_LAYER_III", 48000, 2, True),
    ("mp3", "MP3", "MPEG_LAYER_III", 16000, 1, True),
]
mp3_only = pytest.mark.skipif(not HAS_MP3, reason="libsndfile built without MP3")
ALL_CASES = CASES + [pytest.param(*c, marks=mp3_only) for c in MP3_CASES]


@pytest.mark.parametrize(("ext", "fmt", "subtype", "rate", "channels", "lossy"), ALL_CASES)
def test_sine_survives_every_format(
    tmp_path: Path, ext: str, fmt: str, subtype: str, rate: int, channels: int, lossy: bool
) -> None:
    mono = sine(rate)
    data = np.column_stack([mono] * channels) if channels > 1 else mono
    path = tmp_path / f"tone_{subtype}_{rate}.{ext}"
    sf.write(path, data, rate, format=fmt, subtype=subtype)

    clip = read_audio(path)
    assert isinstance(clip, AudioClip)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.sample_rate == rate and clip.source_channels == channels
    assert clip.duration_s == pytest.approx(1.0, abs=0.03 if lossy else 1e-9)
    assert np.all(np.abs(clip.samples) <= 1.0)

    x16 = load_for_stt(path)
    assert x16.dtype == np.float32 and x16.ndim == 1
    assert len(x16) == pytest.approx(STT_RATE, abs=0.03 * STT_RATE if lossy else 1)
    assert abs(peak_hz(x16, STT_RATE) - FREQ) <= 2.0
    assert middle_rms(x16) == pytest.approx(AMP / np.sqrt(2), rel=0.05)


def test_mp3_support_is_reported() -> None:
    # Documents the environment: the reader accepts MP3 whenever libsndfile does.
    if not HAS_MP3:
        pytest.skip("libsndfile built without MP3")
    assert "MPEG_LAYER_III" in sf.available_subtypes("MP3")


def test_stereo_downmix_is_channel_mean(tmp_path: Path) -> None:
    rate = 48000
    left, right = sine(rate, amp=0.6), sine(rate, freq=1000.0, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.column_stack([left, right]), rate, subtype="FLOAT")
    clip = read_audio(path)
    assert clip.source_channels == 2
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-6)


def test_unsigned_8bit_silence_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    sf.write(path, np.zeros(800), 8000, subtype="PCM_U8")
    assert np.all(read_audio(path).samples == 0.0)


def test_nan_and_inf_become_silence(tmp_path: Path) -> None:
    data = np.full(1600, 0.25, dtype=np.float32)
    data[[10, 20, 30]] = [np.nan, np.inf, -np.inf]
    data[40] = 3.0  # overshoot is clipped to full scale
    path = tmp_path / "bad_values.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    x = read_audio(path).samples
    assert np.all(np.isfinite(x))
    assert x[10] == x[20] == x[30] == 0.0 and x[40] == 1.0 and x[0] == 0.25


def test_too_short_for_stt(tmp_path: Path) -> None:
    path = tmp_path / "blip.wav"
    sf.write(path, sine(16000, seconds=0.05), 16000)
    with pytest.raises(AudioInputError) as err:
        load_for_stt(path)
    msg = assert_one_line_error(err)
    assert "is only 0.05 s long; record at least 0.1 s of speech" in msg
    assert len(load_for_stt(path, min_duration_s=0.01)) == 800


def _missing(p: Path) -> Path:
    return p / "nope.wav"


def _directory(p: Path) -> Path:
    (p / "folder.wav").mkdir()
    return p / "folder.wav"


def _empty(p: Path) -> Path:
    (p / "empty.wav").write_bytes(b"")
    return p / "empty.wav"


def _text(p: Path) -> Path:
    (p / "notes.wav").write_text("this is a shopping list, not audio\n")
    return p / "notes.wav"


def _zero_frames(p: Path) -> Path:
    sf.write(p / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    return p / "zero.wav"


def _header_only_aiff(p: Path) -> Path:
    sf.write(p / "zero.aiff", np.zeros(0, dtype=np.float32), 16000)
    return p / "zero.aiff"


def _header_only_ogg(p: Path) -> Path:
    sf.write(p / "zero.ogg", np.zeros(0, dtype=np.float32), 16000)
    return p / "zero.ogg"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_missing, "no such file: "),
        (_directory, "is a directory"),
        (_empty, "is empty (0 bytes)"),
        (_text, "is not an audio file soundfile can read (WAV, FLAC, MP3, AIFF, OGG)"),
        (_zero_frames, "contains no audio frames"),
        (_header_only_aiff, "contains no audio frames"),
        (_header_only_ogg, "contains no audio frames"),
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path: Path, make, expected: str) -> None:
    path = make(tmp_path)
    for reader in (read_audio, load_for_stt):
        with pytest.raises(AudioInputError) as err:
            reader(str(path))
        msg = assert_one_line_error(err)
        assert expected in msg and path.name in msg


def test_path_with_newline_keeps_message_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError) as err:
        read_audio(tmp_path / "two\nlines.wav")
    assert_one_line_error(err)


def test_truncated_file_reads_or_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, sine(44100), 44100, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    try:
        clip = read_audio(path)
    except AudioInputError as err:
        assert "\n" not in str(err)
    else:
        assert 0 < clip.duration_s <= 1.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(min_size=1, max_size=512), ext=st.sampled_from(["wav", "flac", "mp3", "ogg", "aiff"]))
def test_random_bytes_never_leak_library_errors(tmp_path: Path, blob: bytes, ext: str) -> None:
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes(b"RIFF" + blob if ext == "wav" else blob)
    try:
        read_audio(path)
    except AudioInputError as err:
        assert "\n" not in str(err)


@pytest.mark.slow
def test_ten_minutes_48k_stereo(tmp_path: Path) -> None:
    rate, minutes = 48000, 10
    second = (sine(rate) * 32767).astype(np.int16)  # 440 whole cycles: loops seamlessly
    block = np.column_stack([second, second // 2])
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as f:
        for _ in range(60 * minutes):
            f.write(block)
    clip = read_audio(path)
    assert clip.duration_s == pytest.approx(600.0) and clip.source_channels == 2
    x16 = resample(clip.samples, rate, STT_RATE)
    assert len(x16) == 600 * STT_RATE
    assert abs(peak_hz(x16[:STT_RATE], STT_RATE) - FREQ) <= 2.0


def test_resample_identity_and_dtype() -> None:
    x = np.linspace(-1, 1, 100)  # float64 in
    same = resample(x, 16000, 16000)
    assert same.dtype == np.float32
    np.testing.assert_allclose(same, x, atol=1e-7)
    assert resample(sine(48000), 48000, 16000).dtype == np.float32
    assert len(resample(sine(8000), 8000, 16000)) == 16000
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


def test_to_int16_clips_and_scales() -> None:
    out = to_int16(np.array([0.0, 1.0, -1.0, 0.5, 2.0, -7.0, np.nan], dtype=np.float32))
    assert out.dtype == np.int16
    assert out.tolist() == [0, 32767, -32768, 16384, 32767, -32768, 0]
    ints = np.array([1, -2, 3], dtype=np.int16)
    assert to_int16(ints).tolist() == [1, -2, 3]


def test_pcm16_to_float() -> None:
    data = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    np.testing.assert_allclose(pcm16_to_float(data), [0.0, 0.5, -1.0, 32767 / 32768])
    assert pcm16_to_float(b"").shape == (0,)
    with pytest.raises(AudioInputError) as err:
        pcm16_to_float(b"\x00\x01\x02")
    assert "odd byte count" in assert_one_line_error(err)


@given(st.lists(st.floats(-1.0, 1.0, width=32), max_size=200))
def test_int16_float_round_trip(values: list[float]) -> None:
    x = np.array(values, dtype=np.float32)
    back = pcm16_to_float(to_int16(x).astype("<i2").tobytes())
    np.testing.assert_allclose(back, x, atol=1.5 / 32768)


def test_write_wav_round_trips_int16(tmp_path: Path) -> None:
    data = (sine(22050) * 32767).astype(np.int16)
    path = write_wav(tmp_path / "a" / "b" / "int.wav", data, 22050)  # parents created
    assert path == tmp_path / "a" / "b" / "int.wav"
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (22050, 1, "PCM_16", "WAV")
    back, rate = sf.read(path, dtype="int16")
    assert rate == 22050
    np.testing.assert_array_equal(back, data)


def test_write_wav_round_trips_float(tmp_path: Path) -> None:
    data = sine(22050).astype(np.float64)
    path = write_wav(str(tmp_path / "float.wav"), data, 22050)
    clip = read_audio(path)
    assert clip.sample_rate == 22050 and clip.duration_s == pytest.approx(1.0)
    np.testing.assert_allclose(clip.samples, data, atol=1.0 / 32767)


def test_write_wav_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.wav"
    write_wav(target, sine(16000), 16000)
    write_wav(target, sine(16000, seconds=0.5), 16000)  # overwrite in place
    assert os.listdir(tmp_path) == ["out.wav"]
    assert read_audio(target).duration_s == pytest.approx(0.5)
    assert target.stat().st_mode & 0o777 == 0o666 & ~aio._UMASK

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(aio.sf, "write", broken_write)
    with pytest.raises(OSError):
        write_wav(target, sine(16000), 16000)
    assert os.listdir(tmp_path) == ["out.wav"]  # temp removed, old file untouched
    assert read_audio(target).duration_s == pytest.approx(0.5)


def test_write_wav_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_wav(tmp_path / "x.wav", np.array([1, 2, 3], dtype=np.int32), 16000)
    with pytest.raises(ValueError):
        write_wav(tmp_path / "x.wav", sine(16000), 0)
    assert not (tmp_path / "x.wav").exists()
