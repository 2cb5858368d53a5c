"""Piper TTS with the real bundled voice."""

from __future__ import annotations

import pytest
from conftest import rms

from voice_companion.engines.loader import voice_path
from voice_companion.engines.tts import PiperTTS, VoiceSettings

pytestmark = pytest.mark.slow  # every test here loads the real voice


def test_synthesizes_audible_speech_at_the_voice_rate(tts):
    audio = tts.synthesize_all("Hello there, it is good to hear your voice.")
    assert tts.sample_rate == 22050
    assert audio.dtype.name == "int16"
    assert 1.0 < len(audio) / tts.sample_rate < 6.0
    assert rms(audio) > 500


def test_empty_text_gives_no_audio(tts):
    assert len(tts.synthesize_all("   ")) == 0


def test_length_scale_slows_speech(settings):
    text = "Take your time, there is no hurry at all."
    normal = PiperTTS(voice_path(settings), VoiceSettings(noise_scale=0, noise_w=0))
    slow = PiperTTS(voice_path(settings), VoiceSettings(length_scale=1.5, noise_scale=0, noise_w=0))
    ratio = len(slow.synthesize_all(text)) / len(normal.synthesize_all(text))
    assert 1.3 < ratio < 1.7


def test_volume_setting(settings):
    text = "Quiet please."
    loud = PiperTTS(voice_path(settings), VoiceSettings(noise_scale=0, noise_w=0))
    quiet = PiperTTS(voice_path(settings), VoiceSettings(volume=0.25, noise_scale=0, noise_w=0))
    assert rms(quiet.synthesize_all(text)) < 0.5 * rms(loud.synthesize_all(text))
