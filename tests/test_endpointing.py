"""End-of-turn heuristics: what looks finished, unfinished or like a listening noise."""

from __future__ import annotations

import dataclasses

import pytest

from voice_companion.conversation.endpointing import (
    BACKCHANNELS,
    EndpointSettings,
    guess_language,
    is_backchannel,
    looks_complete,
    required_silence_ms,
)

COMPLETE = [
    ("What time is it?", "en"),
    ("Where are you from?", "en"),  # ends on a preposition, but it is a question
    ("I think so.", "en"),
    ("Tell me a joke.", "en"),
    ("yes", None),
    ("Okay.", "en"),
    ("Thanks!", None),
    ("No", "en-US"),
    ("Thank you very much.", "en"),
    ("Yes, we can.", "en"),
    ("I wish I could.", "en"),
    ("I don't think we should.", "en"),
    ("今天天气很好。", "zh"),
    ("你吃饭了吗", None),  # no punctuation, but a sentence-final particle
    ("是的。", None),
    ("好的", "zh"),
    ("谢谢", None),
    ("你好吗？", None),
    ("这是真的", "zh"),
    ("Il fait beau aujourd'hui.", "fr"),
    ("Oui.", None),
    ("non", "fr"),
    ("Merci beaucoup !", None),
    ("C'est pour qui ?", "fr"),
    ("Et alors ?", "fr"),
    ("D'accord.", "fr"),
]

UNFINISHED = [
    ("I went to the shop and.", "en"),  # Whisper's full stop is not evidence
    ("I went to the shop and", "en"),
    ("So I was thinking, um.", "en"),
    ("It was, like, you know.", None),
    ("I need to talk to", "en"),
    ("Tell me a story about the", "en"),
    ("I mean", "en"),
    ("Because", "en"),
    ("Let me think, uh", "en"),
    ("I was thinking that maybe we could.", "en"),  # a bare modal waits for its verb
    ("My favourite colour is,", "en"),
    ("Well...", "en"),
    ("And then…", None),
    ("我今天去了商店，然后", "zh"),
    ("我今天去了商店然后。", None),
    ("因为。", "zh"),
    ("但是", None),
    ("我想买一个红色的", None),
    ("我跟", "zh"),
    ("就是说，", "zh"),
    ("苹果、", None),
    ("呃", "zh"),
    ("那个", None),
    ("Je suis allé au magasin et.", "fr"),
    ("Je pense que", "fr"),
    ("parce que.", None),
    ("Je voudrais un", "fr"),
    ("Euh", "fr"),
    ("Je vais chez l'", "fr"),
    ("C'est le livre de", "fr"),
    ("Alors", "fr"),
    ("Ben", None),
    ("and then the", "cy"),  # Whisper mislabelled the language: the words still tell
]

CANT_TELL = [
    ("hello there", "en"),
    ("今天天气很好", "zh"),  # no punctuation, nothing final about it
    ("", None),
    ("   ", "en"),
    ("Ich gehe nach Hause und", "de"),  # unsupported language, no punctuation
]


@pytest.mark.parametrize(("text", "language"), COMPLETE)
def test_complete(text, language):
    assert looks_complete(text, language) is True


@pytest.mark.parametrize(("text", "language"), UNFINISHED)
def test_unfinished(text, language):
    assert looks_complete(text, language) is False


@pytest.mark.parametrize(("text", "language"), CANT_TELL)
def test_cant_tell(text, language):
    assert looks_complete(text, language) is None


def test_unsupported_language_falls_back_to_punctuation():
    assert looks_complete("Ich gehe nach Hause.", "de") is True
    assert looks_complete("Ich gehe nach Hause,", "de") is False


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("我想去", None, "zh"),
        ("Je ne sais pas.", None, "fr"),
        ("I don't know.", None, "en"),
        ("hmm", None, "en"),
        ("anything", "zh-TW", "zh"),
        ("x", "yue", "zh"),
        ("x", "FR", "fr"),
        ("Ich weiß nicht", "de", None),
    ],
)
def test_guess_language(text, language, expected):
    assert guess_language(text, language) == expected


BACKCHANNEL = [
    ("mhm", "en"),
    ("Mm-hmm.", None),
    ("Yeah, yeah, yeah.", "en"),
    ("uh huh", None),
    ("Okay.", "en"),
    ("Right.", "en"),
    ("Oh, okay.", "en"),
    ("I see.", "en"),
    ("嗯", "zh"),
    ("嗯嗯", None),
    ("对对对", "zh"),
    ("嗯，对。", None),
    ("哦，好的。", "zh"),
    ("是的", None),
    ("Oui.", "fr"),
    ("Ah oui, d'accord.", None),
    ("ouais ouais", "fr"),
    ("Je vois.", "fr"),
    ("mhm", "cy"),  # Whisper's language guess on one syllable is often wrong
]
NOT_BACKCHANNEL = [
    ("Wait, stop.", "en"),
    ("No, that's wrong.", "en"),
    ("Yeah but I think you're wrong", "en"),
    ("Can you repeat that?", "en"),
    ("no", "en"),
    ("", None),
    ("...", None),
    ("对不起，我有个问题。", "zh"),
    ("等一下", "zh"),
    ("不对", None),
    ("Attends, arrête.", "fr"),
    ("Non, ce n'est pas ça.", "fr"),
    ("yeah " * 10, "en"),  # a long string of anything is talk
]


@pytest.mark.parametrize(("text", "language"), BACKCHANNEL)
def test_backchannel(text, language):
    assert is_backchannel(text, language)


@pytest.mark.parametrize(("text", "language"), NOT_BACKCHANNEL)
def test_not_backchannel(text, language):
    assert not is_backchannel(text, language)


def test_backchannel_lists_cover_each_language():
    assert set(BACKCHANNELS) >= {"en", "zh", "fr"}
    for words in BACKCHANNELS.values():
        assert all(w == w.lower().strip() for w in words)


def test_required_silence_ordering():
    s = EndpointSettings()
    assert s.speculative_after_ms < s.complete_silence_ms < s.default_silence_ms
    assert s.default_silence_ms < s.incomplete_silence_ms <= s.max_silence_ms
    complete = required_silence_ms("What time is it?", "en", s)
    default = required_silence_ms("hello there", "en", s)
    incomplete = required_silence_ms("I went to the shop and.", "en", s)
    assert complete == s.complete_silence_ms and default == s.default_silence_ms
    assert incomplete == s.incomplete_silence_ms
    assert complete < default < incomplete <= s.max_silence_ms


@pytest.mark.parametrize("text", [None, "", "  "])
def test_no_text_waits_the_default(text):
    s = EndpointSettings()
    assert required_silence_ms(text, None, s) == s.default_silence_ms
    assert required_silence_ms(text, "zh", s) == s.default_silence_ms


def test_max_silence_caps_everything():
    s = dataclasses.replace(EndpointSettings(), incomplete_silence_ms=5000, default_silence_ms=3000, max_silence_ms=900)
    assert required_silence_ms("and um", "en", s) == 900
    assert required_silence_ms(None, None, s) == 900
    assert required_silence_ms("Yes.", "en", s) == s.complete_silence_ms
