"""Which voice speaks: the router over real (tiny) Piper voices, and language routing
of real speech through Whisper base."""

from __future__ import annotations

import pytest
from conftest import DATA, espeak
from piper_test_voice import pitch_of
from voice_hub import TestVoices
from voice_setup import install_all, pitch

from voice_companion.core.audio import load_for_stt
from voice_companion.engines import kokoro
from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.voices.pool import VoicePool
from voice_companion.engines.voices.router import VoiceRouter

A, B, ZH, FR = "en_US-test_a-x_low", "en_US-test_b-x_low", "zh_CN-test-x_low", "fr_FR-test-x_low"


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    built = TestVoices.build(tmp_path_factory.mktemp("voices"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(catalog.CATALOG_ENV, str(built.catalog))
        yield built


@pytest.fixture()
def router(voices, tmp_path):
    pool = VoicePool(install_all(voices, tmp_path / "models", skip=(FR,)), capacity=2)
    return VoiceRouter(pool, A, {"zh": ZH, "fr": FR}, sample_rate=22050)


def test_the_reply_voice_follows_the_language(router):
    assert router.follow_language("zh") is None and router.reply_voice == ZH
    audio = router.synthesize_all("你好，很高兴认识你。")
    assert abs(pitch(audio, 22050) - pitch_of(500, 16000)) < 2  # the 16 kHz voice, resampled to the call's rate
    assert router.follow_language("en-US") is None and router.reply_voice == A
    assert abs(pitch(router.synthesize_all("Hello again."), 22050) - pitch_of(300, 22050)) < 2


def test_a_missing_language_is_said_once_and_the_chosen_voice_stands_in(router):
    notice = router.follow_language("fr")
    assert "no French voice is installed" in notice and "voices download fr_FR-test-x_low" in notice
    assert router.reply_voice == A and router.follow_language("fr") is None  # once
    assert len(router.synthesize_all("Bonjour à tous.")) > 0


def test_mixed_chinese_and_english_clauses_go_to_a_voice_that_can_say_them(router):
    router.follow_language("zh")
    assert router.clause_voice("我们明天见。") == ZH
    assert router.clause_voice("See you tomorrow, OK?") == A  # Latin-only clause of a Chinese reply
    assert router.clause_voice("我喜欢 Python 和 Java。") == ZH  # mostly Chinese stays Chinese
    router.follow_language("en")
    assert router.clause_voice("That means 谢谢 in Chinese.") == ZH


def test_swap_speed_and_the_lru_pool(router):
    assert router.use(B) > 0 and router.active == B and router.languages["en"] == B
    assert router.use(B) == 0.0  # loaded: free
    normal = router.synthesize_all("This is a sentence of some length.")
    router.set_speed(2.0)
    fast = router.synthesize_all("This is a sentence of some length.")
    assert 0.4 < len(fast) / len(normal) < 0.65
    router.use(A)
    assert len(router.synthesize_all("This is a sentence of some length.")) > len(fast) * 1.2  # A keeps its own speed
    router.use(ZH)  # capacity 2: the least recently used (B) is unloaded
    assert not router.pool.is_loaded(B) and router.pool.is_loaded(A) and router.pool.is_loaded(ZH)
    other = router.for_call()
    assert other.active == ZH and other.pool is router.pool and other.sample_rate == 22050


def test_language_routing_of_real_speech_with_whisper_base(stt, voices, router, spoken, tmp_path):
    """zh (a human recording), fr (espeak-ng) and en (Piper) speech -> the right voice."""
    install_all(voices, router.pool.models_dir)  # the French voice too
    cases = [
        (load_for_stt(DATA / "zh_welcome.wav"), "zh", ZH),
        (load_for_stt(espeak("Bonjour, je voudrais parler avec toi ce soir.", "fr", tmp_path / "fr.wav")), "fr", FR),
        (load_for_stt(spoken("Good evening, shall we talk for a while?")), "en", A),
    ]
    for audio, language, voice in cases:
        heard = stt.transcribe(audio)
        assert heard.language == language, heard
        assert router.follow_language(heard.language) is None and router.reply_voice == voice


def test_each_voice_keeps_its_own_speaker(voices, router):
    """A multi-speaker voice (like fr_FR-upmc) speaks with the speaker its settings name."""
    from voice_companion.engines.tts import VoiceSettings

    install_all(voices, router.pool.models_dir)
    router.use(FR, VoiceSettings(speaker_id=1))
    assert abs(pitch(router.synthesize_all("Bonjour à tous."), 22050) - pitch_of(400, 22050, speaker=1)) < 2
    router.use(A)
    assert abs(pitch(router.synthesize_all("Hello."), 22050) - pitch_of(300, 22050)) < 2


def test_chinese_is_never_spoken_by_a_voice_that_cannot_read_it(voices, tmp_path):
    """Only English voices installed: a Chinese reply is shown, never made noise of
    (Piper's English voice said "Chinese letter, Chinese letter…" for 11 s)."""
    pool = VoicePool(install_all(voices, tmp_path / "models", skip=(ZH, FR)), capacity=2)
    router = VoiceRouter(pool, A, {"zh": ZH}, sample_rate=22050, offline=())  # nor the offline one
    notice = router.follow_language("zh")
    assert "no Chinese voice is installed" in notice and "shown as text" in notice
    assert "voices download zh_CN-test-x_low" in notice
    assert not router.can_speak("你好，今天过得怎么样？") and len(router.synthesize_all("你好，今天过得怎么样？")) == 0
    assert router.can_speak("See you tomorrow.") and len(router.synthesize_all("See you tomorrow.")) > 0
    assert len(pool.get(A).synthesize_all("That means 谢谢 in Chinese.")) == 0  # no Han to an English voice
    with_chinese = VoiceRouter(
        VoicePool(install_all(voices, tmp_path / "all")), A, {"zh": ZH}, sample_rate=22050, offline=()
    )
    assert with_chinese.can_speak("你好") and len(with_chinese.synthesize_all("你好。")) > 0


def test_the_offline_chinese_voice_stands_in_and_a_downloaded_one_is_preferred(voices, tmp_path):
    """No Chinese Piper voice: the bundled Kokoro voice reads Chinese (issue 18); once one
    is downloaded, it speaks instead."""
    english_only = VoicePool(install_all(voices, tmp_path / "models", skip=(ZH, FR)), capacity=2)
    router = VoiceRouter(english_only, A, {"zh": ZH}, sample_rate=22050)
    assert router.follow_language("zh") is None and router.reply_voice == next(iter(kokoro.VOICES))
    assert router.clause_voice("我们明天见。") == router.reply_voice and router.can_speak("我们明天见。")
    assert router.clause_voice("See you tomorrow, OK?") == A
    downloaded = VoiceRouter(VoicePool(install_all(voices, tmp_path / "all")), A, {"zh": ZH}, sample_rate=22050)
    assert downloaded.follow_language("zh") is None and downloaded.reply_voice == ZH


def test_the_voice_of_the_language_being_spoken_loads_before_the_reply(router):
    """The first Chinese reply of a server run waited 4.4 s for its voice to load; now it
    loads (in the background) as soon as a transcript of the user's words says Chinese."""
    import time

    assert not router.pool.is_loaded(ZH)
    router.prepare_language("zh")
    router.prepare_language("zh")  # asked again while loading: one load
    deadline = time.time() + 20
    while not router.pool.is_loaded(ZH) and time.time() < deadline:
        time.sleep(0.01)
    assert router.pool.is_loaded(ZH) and router.reply_voice == A  # loaded, not chosen: the reply decides
    router.prepare_language("fr")  # nothing installed speaks it: nothing to load, no error
    router.prepare_language(None)
