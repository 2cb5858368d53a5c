"""A persona's voices: its default voice and settings, its language -> voice map and the
language the user speaks to it, applied to the settings every front end loads from."""

from __future__ import annotations

import pytest
from voice_hub import TestVoices
from voice_setup import install_all

from voice_companion.companion.persona import from_dict
from voice_companion.companion.persona import to_toml as persona_toml
from voice_companion.companion.persona_settings import apply_persona
from voice_companion.core.config import Settings, load_settings, to_toml
from voice_companion.engines.loader import load_tts
from voice_companion.engines.models import voice_catalog as catalog


@pytest.fixture()
def home(tmp_path, monkeypatch):
    built = TestVoices.build(tmp_path / "hub")
    monkeypatch.setenv(catalog.CATALOG_ENV, str(built.catalog))
    monkeypatch.setenv("VOICE_COMPANION_HOME", str(tmp_path / "home"))
    install_all(built, tmp_path / "home" / "cache" / "models", skip=("fr_FR-test-x_low",))
    return tmp_path / "home"


def persona(**fields):
    return from_dict({"name": "Lin", **fields}, "test.toml")


def test_the_personas_voice_map_and_listening_language_reach_the_settings(home):
    settings = Settings()
    lin = persona(
        stt_language="zh",
        voice={"name": "zh_CN-test-x_low", "length_scale": 1.3},
        voices={"zh": "zh_CN-test-x_low", "en": "en_US-test_b-x_low"},
    )
    apply_persona(settings, lin)
    assert settings.tts.voice == "zh_CN-test-x_low" and settings.tts.length_scale == 1.3
    assert settings.tts.languages == {"zh": "zh_CN-test-x_low", "en": "en_US-test_b-x_low"}
    assert settings.stt.language == "zh"
    router = load_tts(settings)
    assert router.active == "zh_CN-test-x_low" and router.settings["zh_CN-test-x_low"].length_scale == 1.3
    assert router.follow_language("en") is None and router.reply_voice == "en_US-test_b-x_low"
    assert 'stt_language = "zh"' in persona_toml(lin)


def test_flags_and_config_win_over_the_persona_and_a_missing_voice_is_not_used(home):
    settings = Settings()
    settings.stt.language = "en"  # --language en
    settings.tts.languages = {"zh": "zh_CN-test-x_low"}  # config.toml
    apply_persona(
        settings,
        persona(
            stt_language="zh",
            voice={"name": "fr_FR-test-x_low", "length_scale": 2.0},
            voices={"zh": "en_US-test_b-x_low", "fr": "fr_FR-test-x_low"},
        ),
    )
    assert settings.stt.language == "en" and settings.tts.languages["zh"] == "zh_CN-test-x_low"
    assert settings.tts.voice == "en_US-joe-medium" and settings.tts.length_scale == 1.0  # fr voice not installed


def test_config_toml_takes_a_voice_per_language(home, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[tts]\nlanguages = { zh = "zh_CN-test-x_low" }\nloaded_voices = 2\n')
    settings = load_settings(config)
    assert settings.tts.languages == {"zh": "zh_CN-test-x_low"} and settings.tts.loaded_voices == 2
    assert 'languages = { zh = "zh_CN-test-x_low" }' in to_toml(settings.as_dict())
    config.write_text("[tts]\nlanguages = { zh = 3 }\n")
    with pytest.raises(Exception, match="tts.languages must map names to text"):
        load_settings(config)


def test_a_voice_chosen_in_config_toml_is_kept_over_the_personas(home, tmp_path):
    """Mia names her female voice; a user who chose another in config.toml keeps theirs."""
    config = tmp_path / "config.toml"
    config.write_text('[tts]\nvoice = "en_US-test_b-x_low"\n')
    settings = load_settings(config)
    apply_persona(settings, persona(voice={"name": "en_US-joe-medium", "length_scale": 1.4}))
    assert settings.tts.voice == "en_US-test_b-x_low" and settings.tts.length_scale == 1.0
    untouched = Settings()
    apply_persona(untouched, persona(voice={"name": "en_US-test_b-x_low"}))
    assert untouched.tts.voice == "en_US-test_b-x_low"  # the persona's voice, when nobody chose one
