"""Speech to text with the real bundled Whisper base model."""

from __future__ import annotations

import re

import pytest
from conftest import DATA, espeak

from voice_companion.core.audio import load_for_stt
from voice_companion.core.text import edit_distance

ZH_REFERENCES = {
    "zh_welcome.wav": "欢迎大家来体验达摩院推出的语音识别模型",
    "zh_news_mid.wav": "大学生利用漏洞免费吃肯德基获刑",
    "zh_news_long.wav": "富士康在印度工厂出现大规模感染目前工厂产量已下降超50%",
}
# Characters only simplified Chinese uses for these words; their traditional twins must not appear.
TRADITIONAL = set("歡體驗達識別獲雞開廠現規產與這為個們說")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate (Levenshtein distance / reference length), punctuation ignored."""
    strip = lambda s: re.sub(r"[\s，。！？、,.!?%％]", "", s)  # noqa: E731
    h, r = strip(hypothesis), strip(reference)
    return edit_distance(r, h) / max(len(r), 1)


@pytest.mark.parametrize(
    "sentence",
    [
        "The weather is lovely today, let's go for a walk in the park.",
        "My cat sleeps on the sofa all afternoon.",
    ],
)
def test_english_from_piper_transcribes_to_same_words(stt, spoken, sentence):
    result = stt.transcribe(load_for_stt(spoken(sentence)), "en")
    assert words(result.text) == words(sentence)
    assert result.language == "en"


def test_language_is_detected(stt, spoken):
    result = stt.transcribe(load_for_stt(spoken("Good morning, how did you sleep?")))
    assert result.language == "en"
    assert result.duration_s > 1.0 and result.stt_ms > 0


@pytest.mark.parametrize("name", sorted(ZH_REFERENCES))
def test_chinese_recordings_give_simplified_characters(stt, name):
    result = stt.transcribe(load_for_stt(DATA / name))
    assert result.language == "zh"
    assert "\ufffd" not in result.text
    assert not TRADITIONAL & set(result.text), result.text
    assert cer(result.text, ZH_REFERENCES[name]) <= 0.15, result.text


def test_chinese_average_character_error_rate(stt):
    rates = [cer(stt.transcribe(load_for_stt(DATA / n), "zh").text, ref) for n, ref in ZH_REFERENCES.items()]
    assert sum(rates) / len(rates) <= 0.10, rates


def test_french_speech(stt, tmp_path):
    """French from espeak-ng (robotic, so harder than a person): detected and transcribed."""
    sentence = "Je suis très content de te voir."
    result = stt.transcribe(load_for_stt(espeak(sentence, "fr", tmp_path / "fr.wav")))
    assert result.language == "fr"
    said, heard = (set(re.findall(r"\w+", t.lower())) for t in (sentence, result.text))
    assert len(said & heard) >= 0.8 * len(said), result.text


def test_cer_helper():
    assert cer("abc", "abc") == 0
    assert cer("abd", "abc") == pytest.approx(1 / 3)
    assert cer("", "ab") == 1


def test_noise_is_not_turned_into_words(stt):
    import numpy as np

    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(16000 * 4 // 10) * 0.2).astype(np.float32)
    hum = (0.2 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 150)).astype(np.float32)
    assert stt.transcribe(noise, "en").text == ""
    assert stt.transcribe(hum, "en").text == ""
