"""Which language is this text in, and which script ranges mean what, in one place.

The companion speaks English, Chinese and French (its voices and turn-taking
heuristics cover those three). Han characters mean Chinese; French accents or
function words mean French; anything else falls back to English or to None.
"""

from __future__ import annotations

import re

# Han ideographs (extension A, the unified block, compatibility ideographs): Chinese text.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Scripts written without spaces between words (CJK radicals to Han, Hangul, full-width
# forms, the supplementary ideograph planes): no space is inserted between their clauses.
UNSPACED = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
# Han, kana and Hangul: a text in one of them has no "words" to count for a first clause.
CJK_KANA_HANGUL = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"

HAN_CHAR = re.compile(f"[{HAN}]")
SUPPORTED = frozenset({"en", "zh", "fr"})

_FR_CHARS = re.compile(r"[àâçéèêëîïôûùüÿœæ]")
_FR_HINTS = frozenset(
    {
        "je",
        "tu",
        "il",
        "elle",
        "nous",
        "vous",
        "est",
        "et",
        "le",
        "la",
        "les",
        "des",
        "une",
        "pas",
        "que",
        "qui",
        "c'est",
        "oui",
        "non",
        "merci",
        "mais",
        "donc",
        "euh",
        "ben",
        "alors",
        "avec",
        "pour",
        "ce",
        "j'ai",
        "d'accord",
        "ouais",
        "du",
        "un",
        "de",
    }
)
_EN_HINTS = frozenset(
    {
        "i",
        "you",
        "the",
        "is",
        "and",
        "a",
        "to",
        "it",
        "that",
        "of",
        "yes",
        "no",
        "what",
        "this",
        "um",
        "uh",
        "we",
        "my",
        "are",
        "was",
        "so",
    }
)
_TOKEN = re.compile(r"[\w'’-]+")


def word_tokens(text: str) -> list[str]:
    """Lowercase word tokens; typographic apostrophes become ASCII ones."""
    return [t.strip("-") for t in _TOKEN.findall(text.lower().replace("’", "'")) if t.strip("-")]


def word_units(text: str) -> list[str]:
    """Lower-case words, each CJK character one of them (for comparing what was said)."""
    spaced = re.sub(f"([{HAN}])", r" \1 ", text.lower())
    return [w for w in re.split(f"[^\\w{HAN}']+", spaced) if w]


def has_han(text: str) -> bool:
    return HAN_CHAR.search(text) is not None


def guess_language(text: str, language: str | None = None) -> str | None:
    """ "en", "zh" or "fr" for the heuristics; None when the text is in another language.

    A stated language wins ("zh-TW" -> "zh"; "yue" counts as Chinese). Whisper
    labels a few words unreliably, though, so a stated unsupported language
    still yields to clear evidence in the text; without any, punctuation alone
    decides. With no stated language, the default is English.
    """
    if language:
        code = language.lower().replace("_", "-").split("-")[0]
        code = "zh" if code == "yue" else code
        if code in SUPPORTED:
            return code
        return language_from_text(text)
    return language_from_text(text) or "en"


def language_from_text(text: str) -> str | None:
    """Han characters mean Chinese; French accents or function words mean French."""
    if has_han(text):
        return "zh"
    tokens = word_tokens(text)
    fr = sum(t in _FR_HINTS for t in tokens) + (2 if _FR_CHARS.search(text.lower()) else 0)
    en = sum(t in _EN_HINTS for t in tokens)
    if fr == en == 0:
        return None
    return "fr" if fr > en else "en"
