"""When has the user finished their turn? It depends on what they said.

A fixed silence threshold is either too eager (cuts people off mid-thought) or
too slow (every answer waits). We transcribe speculatively during the pause and
ask how complete the words look: "What time is it?" ends after 250 ms, "and
then um…" waits 1.2 s, and nothing waits longer than 2 s. Whisper adds a full
stop even to unfinished speech, so the last words count before punctuation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointSettings:
    complete_silence_ms: int = 250  # a complete sentence: answer within a human pause
    default_silence_ms: int = 600  # no transcript yet, or can't tell
    incomplete_silence_ms: int = 1200  # ends on "and", "because", "然后", "euh": let them go on
    max_silence_ms: int = 2000  # hard cap whatever was said
    speculative_after_ms: int = 150  # start transcribing (and replying) this far into a pause


_UNFINISHED = {
    "en": {"and", "but", "or", "so", "because", "the", "a", "an", "to", "of", "with", "um", "uh",
           "er", "erm", "like", "if", "when", "that", "my", "your", "for", "in", "on", "at", "is",
           "was", "then", "also", "which", "i"},
    "fr": {"et", "mais", "ou", "donc", "le", "la", "les", "un", "une", "de", "du", "des", "euh",
           "ben", "alors", "que", "qui", "parce", "pour", "avec", "mon", "ma", "mes", "je", "à"},
}
_UNFINISHED_PHRASES = {"en": ("i mean", "you know", "kind of", "sort of"), "fr": ("parce que",)}
_ZH_UNFINISHED = ("然后", "但是", "因为", "所以", "还有", "就是", "那个", "嗯", "呃", "的", "和",
                  "跟", "而且", "如果", "我", "是", "在")
_ZH_COMPLETE_SHORT = {"是的", "好的", "谢谢", "对", "好", "没有", "不是", "可以"}
_SHORT_COMPLETE = {"yes", "no", "okay", "ok", "thanks", "thank you", "sure", "oui", "non",
                   "merci", "d'accord", "bonjour", "hello", "hi", "bye", "goodbye"}
BACKCHANNELS: dict[str, frozenset[str]] = {
    "en": frozenset({"mhm", "mm", "mmm", "hmm", "uh-huh", "uh huh", "yeah", "yep", "ok", "okay",
                     "right", "i see", "sure", "ah", "oh", "wow", "cool", "nice", "yes"}),
    "zh": frozenset({"嗯", "嗯嗯", "对", "对对", "好", "哦", "噢", "是", "是的", "嗯哼", "啊", "行"}),
    "fr": frozenset({"oui", "d'accord", "ouais", "hmm", "mm", "mhm", "ah", "oh", "ok", "okay",
                     "je vois", "bien sûr"}),
}
_CJK = re.compile(r"[\u4e00-\u9fff]")
_TERMINAL = re.compile(r"[.?!。？！…]\s*$")


def guess_language(text: str, language: str | None) -> str:
    if language:
        return language
    return "zh" if _CJK.search(text) else "en"


def _normalise(text: str) -> str:
    return re.sub(r"[^\w\s'\u4e00-\u9fff-]", " ", text.lower()).strip()


def looks_complete(text: str, language: str | None) -> bool | None:
    """True: sounds finished. False: clearly mid-sentence. None: can't tell."""
    stripped = text.strip()
    if not stripped:
        return None
    lang = guess_language(stripped, language)
    if stripped.endswith((",", "，", "、", "...", "…", "-", "—")) and not stripped.endswith("?…"):
        return False
    words = _normalise(stripped)
    if lang == "zh":
        core = re.sub(r"\s", "", words)
        if core in _ZH_COMPLETE_SHORT:
            return True
        if core.endswith(_ZH_UNFINISHED):
            return False
    else:
        if words in _SHORT_COMPLETE:
            return True
        tokens = words.split()
        if tokens and (tokens[-1] in _UNFINISHED.get(lang, _UNFINISHED["en"])
                       or words.endswith(_UNFINISHED_PHRASES.get(lang, ()))):
            return False
    return True if _TERMINAL.search(stripped) else None


def required_silence_ms(text: str | None, language: str | None, settings: EndpointSettings) -> int:
    verdict = looks_complete(text, language) if text else None
    if verdict is True:
        return settings.complete_silence_ms
    if verdict is False:
        return min(settings.incomplete_silence_ms, settings.max_silence_ms)
    return settings.default_silence_ms


def is_backchannel(text: str, language: str | None) -> bool:
    """'mhm', 'yeah yeah', '嗯嗯': listening noises, not a bid for the turn."""
    words = _normalise(text)
    if not words:
        return False
    lang = guess_language(text, language)
    known = BACKCHANNELS.get(lang, BACKCHANNELS["en"]) | BACKCHANNELS["en"]
    if words in known:
        return True
    parts = words.split() if lang != "zh" else [words]
    return len(set(parts)) == 1 and parts[0] in known
