"""The command line as a new user meets it: real models, real files, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import one_line_error, rms, run_cli


def test_transcribe_json(spoken):
    proc = run_cli("transcribe", str(spoken("Good evening, I missed you today.")), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"text", "language", "duration_s", "stt_ms"}
    assert "missed you today" in result["text"].lower()
    assert result["language"] == "en"


def test_reply_writes_spoken_answer(spoken, tmp_path):
    out = tmp_path / "answer.wav"
    proc = run_cli(
        "reply", "--input", str(spoken("What should I cook for dinner tonight?")), "--output", str(out), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "dinner" in result["transcript"].lower()
    assert result["reply"].strip()
    for stage in ("stt", "llm_first_token", "first_clause", "tts_first_audio", "voice_to_voice"):
        assert result["timings_ms"][stage] > 0
    audio, rate = sf.read(out, dtype="int16")
    assert rate == 32000 == result["sample_rate"]  # Mia's voice (Festival's slt)
    assert len(audio) > rate * 0.5 and rms(audio) > 300


@pytest.mark.slow  # loads the real Piper voice
def test_say_writes_wav(tmp_path):
    out = tmp_path / "hello.wav"
    proc = run_cli("say", "Hello, nice to meet you.", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    audio, rate = sf.read(out)
    assert rate == 32000 and len(audio) > rate  # Mia's voice (Festival's slt)


@pytest.mark.slow  # loads the offline Chinese voice and Whisper
def test_say_in_chinese_speaks_with_the_offline_chinese_voice(tmp_path):
    """Not 11 s of "Chinese letter, Chinese letter…" from the English voice (issue 18)."""
    out = tmp_path / "nihao.wav"
    proc = run_cli("say", "你好，今天过得怎么样？", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Prefix dict" not in proc.stderr  # jieba kept quiet
    heard = json.loads(run_cli("transcribe", str(out), "--json").stdout)
    assert heard["language"] == "zh" and "今天" in heard["text"], heard


@pytest.mark.slow  # chats with the real LLM
def test_chat_piped_one_reply_per_line():
    proc = run_cli("chat", "--json", stdin="Hello!\n\nHow are you today?\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    replies = [json.loads(line) for line in lines]
    assert replies[0]["user"] == "Hello!" and replies[1]["user"] == "How are you today?"
    assert all(r["reply"].strip() for r in replies)


def test_chat_with_dead_llm_server_keeps_going():
    proc = run_cli(
        "chat", "--json", "--llm-backend", "openai", "--base-url", "http://127.0.0.1:9/v1", stdin="one\ntwo\n"
    )
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert len(replies) == 2 and all("cannot reach" in r["error"] for r in replies)


def test_models_list_json():
    proc = run_cli("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["models"]}
    for name in ("whisper-base", "smollm2-135m", "en_US-joe-medium"):
        assert rows[name]["installed"] and rows[name]["source"] == "bundled"
    assert not rows["whisper-small"]["installed"]


def test_models_download_unreachable_hub_is_one_line():
    one_line_error(run_cli("models", "download", "whisper-small", "--no-progress"))


def test_config_show(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tts]\nlength_scale = 1.2\n[companion]\nname = "Lina"\n')
    proc = run_cli("--config", str(cfg), "config", "show", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["tts"]["length_scale"] == 1.2 and shown["companion"]["name"] == "Lina"
    assert shown["paths"]["cache_dir"].endswith("cache")
    assert shown["origins"]["tts.length_scale"] == str(cfg) and "tts.noise_scale" not in shown["origins"]
    assert shown["origins"]["llm.temperature"].startswith("tier ") and isinstance(shown["llm"]["temperature"], float)
    assert shown["vad"]["start_ms"] == 90 and shown["endpointing"]["max_silence_ms"] == 2000  # every tunable
    text = run_cli("--config", str(cfg), "config", "show").stdout
    assert f"length_scale = 1.2  # {cfg}" in text


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[tts]\nspeed = 2\n", "unknown key tts.speed"),
        ('[tts]\nlength_scale = "fast"\n', "must be a float"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line(tmp_path, content, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    assert expected in one_line_error(run_cli("--config", str(cfg), "config", "show"))


def _write(path, seconds, rate=16000, channels=1, subtype="PCM_16", tone=True):
    n = int(seconds * rate)
    t = np.arange(n) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) if tone else np.zeros(n)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    sf.write(path, data, rate, subtype=subtype)
    return path


@pytest.mark.slow  # eight CLI processes
def test_bad_inputs_give_one_line_messages(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("these are my notes, not audio\n" * 20)
    short = _write(tmp_path / "short.wav", 0.05)
    for path, fragment in [
        (empty, "empty"),
        (text, "not an audio file"),
        (short, "only 0.05 s"),
        (tmp_path / "missing.wav", "no such file"),
    ]:
        for args in (["transcribe", str(path)], ["reply", "-i", str(path), "-o", str(tmp_path / "o.wav")]):
            assert fragment in one_line_error(run_cli(*args)).lower()


def test_odd_formats_transcribe(spoken, tmp_path):
    """Stereo 48 kHz and 8-bit versions of a spoken question give the same words."""
    speech, rate = sf.read(spoken("Please remind me to call my sister."))
    from voice_companion.core.audio import resample

    up = resample(speech.astype(np.float32), rate, 48000)
    stereo = tmp_path / "stereo48k.flac"
    sf.write(stereo, np.stack([up, up], axis=1), 48000, subtype="PCM_24")
    eight = tmp_path / "eight.wav"
    sf.write(eight, speech, rate, subtype="PCM_U8")
    tiny = _write(tmp_path / "tenth.wav", 0.1, tone=False)
    for path in (stereo, eight):
        proc = run_cli("transcribe", str(path), "--json", "--language", "en")
        assert proc.returncode == 0, proc.stderr
        assert "call my sister" in json.loads(proc.stdout)["text"].lower()
    proc = run_cli("transcribe", str(tiny), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["duration_s"] == pytest.approx(0.1)


def test_ten_minutes_of_audio(spoken, tmp_path):
    """A long recording (mostly silence) transcribes its speech without blowing up."""
    speech, rate = sf.read(spoken("This is the end of a very long recording."), dtype="float32")
    silence = np.zeros(int(600 * rate) - len(speech), dtype=np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate([silence, speech]), rate)
    proc = run_cli("transcribe", str(path), "--json", "--language", "en")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["duration_s"] == pytest.approx(600, abs=0.1)
    assert "long recording" in result["text"].lower()
