"""Desk mode end to end through a virtual ALSA sound card (the file plugin).

ALSA's `file` plugin reads the microphone from a raw 16 kHz file and writes the
speaker to /dev/null; PortAudio and sounddevice see an ordinary device. The
plugin delivers audio faster than real time, so this also checks that desk mode
keeps to the clock.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

ASOUNDRC = """pcm.!default {{ type plug; slave {{ pcm "wavfile"; format S16_LE; rate 16000; channels 1 }} }}
pcm.wavfile {{ type file; slave.pcm "null"; file "/dev/null"; infile "{infile}"; format "raw" }}
"""


def virtual_card(home, monkeypatch, audio: np.ndarray):
    raw = home / "mic16k.raw"
    (np.clip(audio, -1, 1) * 32767).astype("<i2").tofile(raw)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=raw))
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture()
def alsa_home(tmp_path, monkeypatch, spoken):
    import soundfile as sf

    from voice_companion.core.audio import resample

    speech, rate = sf.read(spoken("Hello, can you hear me from my desk?"), dtype="float32")
    return virtual_card(
        tmp_path,
        monkeypatch,
        np.concatenate([np.zeros(8000, np.float32), resample(speech, rate, 16000), np.zeros(16000 * 60, np.float32)]),
    )


def test_talk_through_virtual_sound_card(alsa_home):
    proc = run_cli("talk", "--duration", "12", "--json", "--no-greeting", timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    kinds = [e.get("type") for e in events]
    heard = [e["text"] for e in events if e.get("type") == "conversation.item.input_audio_transcription.completed"]
    assert heard and "hear me" in heard[0].lower(), kinds
    assert "response.output_text.delta" in kinds
    metrics = [e for e in events if e.get("type") == "metrics.turn"]
    assert metrics and metrics[0]["voice_to_voice_ms"] > 0, proc.stdout[:6000]


@pytest.mark.slow  # a call with the real models at real-time pace
def test_talk_opens_with_the_greeting(tmp_path, monkeypatch):
    """A quiet room: the companion picks up the call with its greeting, played whole.
    (Speech during or after it is not checked here: ALSA's file plugin drops capture
    blocks while it plays, so the card's two clocks drift apart as no real card's do.)"""
    virtual_card(tmp_path, monkeypatch, np.zeros(16000 * 30, np.float32))
    # 12 s: a four-clause greeting in Mia's voice (Festival's slt) lasts ~7 s after the models load
    proc = run_cli("talk", "--duration", "12", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    said = [e["delta"] for e in events if e.get("type") == "response.output_text.delta"]
    done = [e for e in events if e.get("type") == "response.done"]
    assert said and done and done[0]["status"] == "completed", events
    assert done[0]["text"] == " ".join(said) and len(done[0]["text"]) > 5
    assert not any(e.get("type") == "metrics.turn" for e in events)  # not a turn of the user's


def test_devices_lists_the_virtual_card(alsa_home):
    proc = run_cli("devices", "--json")
    assert proc.returncode == 0, proc.stderr
    names = [d["name"] for d in json.loads(proc.stdout)["devices"]]
    assert any("default" in n for n in names)


def test_no_portaudio_devices_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".asoundrc").write_text("pcm.!default { type null }\nctl.!default { type hw card 99 }\n")
    proc = run_cli("talk", "--duration", "2", "--input-device", "99")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot open the audio devices" in proc.stderr


def test_chat_speaks_through_the_sound_card(alsa_home):
    proc = run_cli("chat", "--speak", stdin="Say hello to me.\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
