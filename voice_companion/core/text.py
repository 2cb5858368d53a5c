"""Small text helpers shared by memory and context: token estimates and search terms.

Chinese has no spaces, so words are not the unit: each CJK character counts as a
token and as a search unit, where Latin text counts about four characters a token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from voice_companion.core.language import HAN

CJK = HAN
_CJK_RUN = re.compile(f"[{CJK}]+")
_WORD = re.compile(rf"[^\W{CJK}_]+(?:'[^\W{CJK}_]+)?")
MESSAGE_OVERHEAD = 4  # chat-template tokens around each message

STOPWORDS = frozenset(
    """
the and you your yours what who whom how why when where which that this these those with for are was
were have has had did does doing not but can could would should will about from they them there their
then than its it's i'm i've i'd just like know tell remember said say does any some all also very really
much many more most been being into onto over under again still yes yeah okay well think want called named
les des une est que qui quoi pour dans avec mon mes ton tes son ses pas mais comment quel quelle
quels quelles vous nous elle ils sont était suis tu as-tu c'est qu'est
""".split()
)
_ZH_FILLER = set("的了吗呢吧啊呀么是我你他她它们在有和就都也还这那什么怎样哪谁几")


_ASKING = re.compile(
    r"[?？]|\b(?:what|where|who|when|which|how|why|remember|recall|last time|told you|quoi|où|qui|quand|"
    r"comment|souviens|rappelle)\b|什么|哪|谁|几|多少|怎么|记得|上次|告诉过你",
    re.IGNORECASE,
)


def asks_or_recalls(text: str) -> bool:
    """A question, or a reference to the past: worth searching old turns for."""
    return _ASKING.search(text) is not None


def estimate_tokens(text: str) -> int:
    """~ chars/4 for Latin scripts, 1 per CJK character: a cheap, conservative budget."""
    cjk = sum(len(run) for run in _CJK_RUN.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


def message_tokens(text: str) -> int:
    return estimate_tokens(text) + MESSAGE_OVERHEAD


def has_cjk(text: str) -> bool:
    return _CJK_RUN.search(text) is not None


def keywords(text: str) -> list[str]:
    """Search units: content words (3+ letters) and, for Chinese, overlapping trigrams."""
    lowered = text.lower()
    words = [w.removesuffix("'s") for w in _WORD.findall(lowered)]
    out = [w for w in words if len(w) >= 3 and w not in STOPWORDS]
    for run in _CJK_RUN.findall(lowered):
        grams = [run[i : i + 3] for i in range(len(run) - 2)]
        out += [g for g in grams if sum(ch in _ZH_FILLER for ch in g) < 2]
    return list(dict.fromkeys(out))


def cjk_bigrams(text: str) -> list[str]:
    """Two-character Chinese units (most Chinese words), which trigram search cannot match."""
    out = []
    for run in _CJK_RUN.findall(text):
        out += [run[i : i + 2] for i in range(len(run) - 1) if not set(run[i : i + 2]) <= _ZH_FILLER]
    return list(dict.fromkeys(out))


def search_stem(word: str) -> str:
    """The part of an English or French word its other forms share ("night shifts" must
    find "Night shift"; "visited", "visiting" find "visit"): trigram search matches
    substrings, so a stem of 4+ letters finds every inflection. Chinese is left as it is."""
    for ending in ("ing", "ed", "es", "s", "x"):
        stem = word.removesuffix(ending)
        if stem != word and len(stem) >= 4 and not word.endswith("ss") and stem.isalpha():
            return stem
    return word


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression (trigram tokenizer): any keyword, as a quoted phrase."""
    units = dict.fromkeys(search_stem(k) for k in keywords(text))
    return " OR ".join('"' + k.replace('"', "") + '"' for k in units)


def shorten(text: str, limit: int) -> str:
    """At most `limit` estimated tokens, cut at a word (or character, for Chinese)."""
    text = " ".join(text.split())
    if estimate_tokens(text) <= limit:
        return text
    out = ""
    for piece in re.findall(rf"[{CJK}]|\S+\s*", text):
        if estimate_tokens(out + piece) > limit:
            break
        out += piece
    return out.rstrip() + "…"


def edit_distance(said: Sequence[str], heard: Sequence[str]) -> int:
    """Levenshtein distance over words or characters: the WER/CER of a voice heard back
    by Whisper (tests, scripts/bench_voices.py)."""
    previous = list(range(len(heard) + 1))
    for i, unit in enumerate(said, 1):
        current = [i]
        for j, got in enumerate(heard, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (unit != got)))
        previous = current
    return previous[-1]
