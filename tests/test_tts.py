"""The real bundled voices: Piper (English), the offline Chinese one (Kokoro) and the
offline female English one (Festival)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rms
from test_stt import cer, words

from voice_companion.core.text import edit_distance
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


# Everyday lines of a Chinese companion, as in scripts/research/voice_roundtrip/sentences_zh.txt
CHINESE = [
    "你好，今天过得怎么样？",
    "我今天有点累，但是很开心。",
    "明天我们一起去公园散步吧。",
    "别担心，我一直在这里陪着你。",
    "晚安，做个好梦。",
]


@pytest.mark.slow  # the Kokoro model and Whisper
def test_the_offline_chinese_voice_is_understood_by_whisper(settings, stt, tmp_path):
    """Issue 18's bar: Whisper base reads the bundled Chinese voice at CER <= 0.25."""
    from voice_companion.core.audio import load_for_stt, write_wav
    from voice_companion.engines import kokoro
    from voice_companion.engines.voices.pool import VoicePool

    voice = VoicePool(settings.paths.models_dir).get(next(iter(kokoro.VOICES)))
    assert voice.sample_rate == 24_000 and voice.can_speak("你好")
    heard = [
        stt.transcribe(load_for_stt(write_wav(tmp_path / f"{n}.wav", voice.synthesize_all(said), 24_000)), "zh").text
        for n, said in enumerate(CHINESE)
    ]
    assert cer("".join(heard), "".join(CHINESE)) <= 0.25, heard


# Everyday lines of an English companion, as in scripts/research/voice_roundtrip/sentences_en.txt
ENGLISH = [
    "Hey, it's good to hear you! How are you doing?",
    "That sounds like a lovely afternoon.",
    "Did you sleep well last night?",
    "Tell me more about your sister's visit.",
    "I'm here, take all the time you need.",
]


def wer(hypothesis: str, reference: str) -> float:
    """Word error rate (Levenshtein distance over words / reference words)."""
    return edit_distance(words(reference), words(hypothesis)) / max(len(words(reference)), 1)


@pytest.fixture(scope="module")
def festival_voice(settings):
    from voice_companion.engines import festival
    from voice_companion.engines.voices.pool import VoicePool

    if not festival.installed():
        pytest.fail(f"Festival's voice is missing: {festival.INSTALL_HINT}")
    return VoicePool(settings.paths.models_dir).get("en_US-festival_slt-hts")


def test_the_offline_female_english_voice_is_understood_by_whisper(festival_voice, stt, tmp_path):
    """Mia's voice (issue 18): Whisper base reads it back (WER 0.013 on the 20 research sentences)."""
    from voice_companion.core.audio import load_for_stt, write_wav

    assert festival_voice.sample_rate == 32_000
    heard = [
        stt.transcribe(
            load_for_stt(write_wav(tmp_path / f"{n}.wav", festival_voice.synthesize_all(said), 32_000)), "en"
        ).text
        for n, said in enumerate(ENGLISH)
    ]
    assert wer(" ".join(heard), " ".join(ENGLISH)) <= 0.1, heard


def test_the_festival_voice_takes_the_calls_speed_and_any_text(festival_voice):
    text = "Take your time, there is no hurry at all."
    normal = len(np.concatenate(list(festival_voice.synthesize(text, VoiceSettings(length_scale=1.0)))))
    slow = len(np.concatenate(list(festival_voice.synthesize(text, VoiceSettings(length_scale=1.4)))))
    assert 1.25 < slow / normal < 1.6
    # quotes, backslashes and a newline cannot break out of the command sent to festival
    tricky = festival_voice.synthesize_all('She said "hi" \\ then (quit) and\nleft.')
    assert rms(tricky) > 500 and len(tricky) / 32_000 > 1.0
    assert len(festival_voice.synthesize_all("你好")) == 0 and not festival_voice.can_speak("你好")


def test_a_festival_that_dies_is_started_again(festival_voice):
    festival_voice._process.kill()
    festival_voice._process.wait()
    assert rms(festival_voice.synthesize_all("Still here.")) > 500
