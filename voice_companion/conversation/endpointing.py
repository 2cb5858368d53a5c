"""When has the user finished their turn? It depends on what they said.

A fixed silence threshold is either too eager (it cuts people off mid-thought)
or too slow (every answer waits). The session transcribes speculatively during
the pause and asks how complete the words look: "What time is it?" ends after
250 ms, "and then um" waits 1.2 s, and nothing waits longer than 2 s.

Whisper tends to end every segment with a full stop, even unfinished speech, so
the last words are checked before the punctuation is trusted: "I went to the
shop and." is unfinished. Words that often end questions ("Where are you
from?", "C'est pour qui ?") only count as unfinished without a "?" or "!".

The heuristics cover English, Chinese and French; other languages fall back to
punctuation alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from voice_companion.core.config import EndpointSettings
from voice_companion.core.language import HAN_CHAR, guess_language, has_han, word_tokens

# -- word lists -------------------------------------------------------------------------
# "strong": a turn essentially never ends on these (conjunctions, articles, fillers).
# "weak": often ends a question ("Who did you go with?"), so they count as
#         unfinished only without a "?" or "!".

_EN_STRONG = frozenset(
    {
        "and",
        "but",
        "or",
        "nor",
        "because",
        "'cause",
        "the",
        "a",
        "an",
        "my",
        "your",
        "our",
        "their",
        "its",
        "um",
        "umm",
        "uh",
        "uhh",
        "er",
        "erm",
        "if",
        "unless",
        "although",
        "whereas",
        "whether",
        "which",
        "whose",
        "i",
        "i'm",
        "i'll",
        "i've",
        "i'd",
        "we're",
        "you're",
        "they're",
        "it's",
        "that's",
        "there's",
    }
)
_EN_WEAK = frozenset(
    {
        "so",
        "to",
        "of",
        "with",
        "for",
        "about",
        "from",
        "into",
        "at",
        "like",
        "than",
        "until",
    }
)
# A bare modal at the end ("maybe we could") usually waits for its verb, except
# in short answers ("Yes, we can."), negations ("I don't think we should.") and wishes.
_EN_MODALS = frozenset({"could", "would", "should", "can", "will", "might", "may", "must", "shall"})
_EN_BE = frozenset({"is", "are", "was", "were"})
_EN_BE_CLOSERS = frozenset(
    {"it", "he", "she", "they", "we", "you", "i", "there", "here", "that", "this", "what", "who"}
)
_EN_ANSWER_OPENERS = frozenset({"yes", "yeah", "yep", "no", "nope", "sure", "okay", "ok", "well", "maybe"})
_EN_STRONG_PHRASES = ("i mean", "kind of", "sort of", "such as", "as well as", "and then", "in order to")
_EN_WEAK_PHRASES = ("you know",)
_EN_COMPLETE_ENDINGS = (  # set phrases that end on a "weak" word yet are finished
    "think so",
    "hope so",
    "guess so",
    "believe so",
    "suppose so",
    "afraid so",
    "said so",
    "told you so",
    "do so",
    "even so",
    "and so on",
    "or so",
    "feel like it",
    "looks like it",
)

_FR_STRONG = frozenset(
    {
        "et",
        "mais",
        "ou",
        "donc",
        "car",
        "parce",
        "puisque",
        "que",
        "qu'",
        "le",
        "la",
        "les",
        "l'",
        "de",
        "d'",
        "du",
        "des",
        "au",
        "aux",
        "à",
        "mon",
        "ma",
        "mes",
        "ton",
        "ta",
        "tes",
        "son",
        "sa",
        "ses",
        "ce",
        "cet",
        "cette",
        "ces",
        "notre",
        "votre",
        "je",
        "j'",
        "c'est",
        "euh",
        "heu",
        "ben",
        "bah",
        "lorsque",
        "si",
    }
)
_FR_WEAK = frozenset(
    {
        "un",
        "une",
        "pour",
        "avec",
        "sans",
        "sur",
        "dans",
        "chez",
        "alors",
        "qui",
        "quand",
        "comme",
        "genre",
    }
)
_FR_STRONG_PHRASES = ("parce que", "je veux dire", "c'est-à-dire", "est-ce que", "à cause de")
_FR_WEAK_PHRASES = ("tu sais", "tu vois", "vous savez")
_FR_COMPLETE_ENDINGS = (
    "mais oui",
    "mais non",
    "mais si",
    "et alors",
    "pourquoi pas",
    "et toi",
    "et vous",
    "bien sur",
)

# Chinese has no spaces: these match the end of the text with punctuation removed.
_ZH_STRONG = (
    "然后",
    "但是",
    "可是",
    "不过",
    "因为",
    "所以",
    "还有",
    "就是",
    "那个",
    "而且",
    "并且",
    "或者",
    "还是",
    "如果",
    "虽然",
    "比如",
    "以及",
    "那么",
    "嗯",
    "呃",
    "额",
    "和",
    "跟",
    "与",
    "把",
    "被",
    "对于",
    "关于",
)
# "一个红色的…" is unfinished, "这是我的" is not; "你总会" / "我想" wait for their verb,
# "我会" / "我想" can answer a question: a guess either way.
_ZH_WEAK = ("的", "会", "想", "要", "觉得", "的话", "想问")
_ZH_COMPLETE_ENDINGS = (
    "是的",
    "好的",
    "真的",
    "对的",
    "挺好的",
    "没事的",
    "会的",
    "可以的",
    "行的",
    "嗯嗯",
    "就是这样",
)
_ZH_FINAL_PARTICLES = ("吗", "呢", "吧", "了", "啦", "嘛", "呀")  # sentence-final: the clause closed

_SHORT_COMPLETE: dict[str, frozenset[str]] = {
    "en": frozenset(
        {
            "yes",
            "no",
            "yeah",
            "yep",
            "nope",
            "okay",
            "ok",
            "sure",
            "thanks",
            "thank you",
            "thanks a lot",
            "right",
            "exactly",
            "of course",
            "sounds good",
            "got it",
            "alright",
            "all right",
            "fine",
            "great",
            "good",
            "perfect",
            "hello",
            "hi",
            "hey",
            "bye",
            "goodbye",
            "good night",
            "never mind",
            "not really",
            "why not",
        }
    ),
    "zh": frozenset(
        {
            "是的",
            "好的",
            "谢谢",
            "谢谢你",
            "对",
            "对的",
            "好",
            "行",
            "可以",
            "没有",
            "不是",
            "不用",
            "不要",
            "没问题",
            "没事",
            "嗯嗯",
            "再见",
            "你好",
            "当然",
            "没错",
        }
    ),
    "fr": frozenset(
        {
            "oui",
            "non",
            "merci",
            "merci beaucoup",
            "d'accord",
            "ok",
            "okay",
            "bien sûr",
            "voilà",
            "exactement",
            "bonjour",
            "salut",
            "au revoir",
            "bonne nuit",
            "ça marche",
            "pas du tout",
            "si",
            "pourquoi pas",
            "c'est ça",
            "tant pis",
        }
    ),
}


@dataclass(frozen=True)
class _Words:
    """One space-separated language's word lists."""

    short_complete: frozenset[str]
    strong: frozenset[str]
    weak: frozenset[str]
    strong_phrases: tuple[str, ...]
    weak_phrases: tuple[str, ...]
    complete_endings: tuple[str, ...]


_WORDS = {
    "en": _Words(
        _SHORT_COMPLETE["en"], _EN_STRONG, _EN_WEAK, _EN_STRONG_PHRASES, _EN_WEAK_PHRASES, _EN_COMPLETE_ENDINGS
    ),
    "fr": _Words(
        _SHORT_COMPLETE["fr"], _FR_STRONG, _FR_WEAK, _FR_STRONG_PHRASES, _FR_WEAK_PHRASES, _FR_COMPLETE_ENDINGS
    ),
}

BACKCHANNELS: dict[str, frozenset[str]] = {
    "en": frozenset(
        {
            "mhm",
            "mm",
            "mmm",
            "hm",
            "hmm",
            "uh-huh",
            "uh huh",
            "mm-hmm",
            "yeah",
            "yep",
            "yes",
            "ok",
            "okay",
            "right",
            "sure",
            "i see",
            "oh",
            "ah",
            "aha",
            "wow",
            "cool",
            "nice",
            "true",
            "got it",
            "alright",
            "all right",
        }
    ),
    "zh": frozenset(
        {
            "嗯",
            "嗯嗯",
            "对",
            "对对",
            "好",
            "哦",
            "噢",
            "喔",
            "是",
            "是的",
            "嗯哼",
            "啊",
            "行",
            "好的",
            "对的",
            "没错",
            "对啊",
            "是啊",
            "對",
            "沒錯",
        }
    ),
    "fr": frozenset(
        {
            "oui",
            "ouais",
            "d'accord",
            "ok",
            "okay",
            "hmm",
            "mm",
            "mhm",
            "ah",
            "oh",
            "bon",
            "je vois",
            "bien sûr",
            "c'est ça",
            "voilà",
            "exactement",
            "ah bon",
            "super",
        }
    ),
}
# Whisper often mislabels the language of a one-word utterance, and a listening
# noise in any language is still not a bid for the turn, so all sets count.
_ALL_BACKCHANNELS = frozenset().union(*BACKCHANNELS.values())
_BACKCHANNEL_MAX_TOKENS = 6  # longer than this is talk, whatever the words


_TRAILING_CLOSERS = '"”»)）」』】 \t\n'  # not "'": French elision ("chez l'") ends a word
_UNFINISHED_PUNCT = (",", "，", "、", ";", "；", ":", "：", "...", "…", "-", "–", "—")
_TERMINAL_PUNCT = (".", "?", "!", "。", "？", "！", "．")
_QUESTION_OR_EXCLAIM = ("?", "!", "？", "！")


# -- helpers ---------------------------------------------------------------------------


def _ends_with(tokens: list[str], phrases: tuple[str, ...]) -> bool:
    for phrase in phrases:
        words = phrase.split()
        if len(tokens) >= len(words) and tokens[-len(words) :] == words:
            return True
    return False


def _zh_core(text: str) -> str:
    """Chinese text without spaces and punctuation, for suffix matching."""
    return "".join(ch for ch in text if ch.isalnum())


def _unfinished_words(text: str, lang: str, question: bool) -> bool | None:
    """False if the words clearly stop mid-sentence; True if they clearly close; else None."""
    if lang == "zh":
        core = _zh_core(text)
        if not core:
            return None
        if core in _SHORT_COMPLETE["zh"] or core.endswith(_ZH_COMPLETE_ENDINGS):
            return True
        if core.endswith(_ZH_STRONG) or (not question and core.endswith(_ZH_WEAK)):
            return False
        return True if core.endswith(_ZH_FINAL_PARTICLES) else None

    tokens = word_tokens(text)
    if not tokens:
        return None
    words = _WORDS[lang]
    if " ".join(tokens) in words.short_complete or _ends_with(tokens, words.complete_endings):
        return True
    last = tokens[-1]
    elided = lang == "fr" and last.endswith("'")  # "chez l'"
    if last in words.strong or _ends_with(tokens, words.strong_phrases) or elided:
        return False
    if not question and (last in words.weak or _ends_with(tokens, words.weak_phrases)):
        return False
    if lang == "en" and not question and last in _EN_MODALS and _modal_waits_for_verb(tokens):
        return False
    if lang == "en" and not question and last in _EN_BE and len(tokens) > 1 and tokens[-2] not in _EN_BE_CLOSERS:
        return False  # "my ID number is" waits for the number; "here it is" does not
    return None


def _modal_waits_for_verb(tokens: list[str]) -> bool:
    """ "I was thinking that maybe we could" -> True; "Yes, we can" / "I wish I could" -> False."""
    if len(tokens) <= 3 or tokens[0] in _EN_ANSWER_OPENERS:
        return False
    return not any(t in ("not", "never", "wish") or t.endswith("n't") for t in tokens)


# -- the fusion's evidence ---------------------------------------------------------------

_FILLERS = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "hmm", "euh", "heu", "bah", "ben"})
_ZH_FILLERS = ("嗯", "呃", "额", "那个", "这个")
_NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten un deux trois quatre cinq six sept huit neuf dix".split()
)
_ZH_DIGITS = frozenset("零〇一二三四五六七八九十两幺")
_DIGIT_STRING = 4  # digits (or number words) in the turn before a number is "being dictated"


class Verdict(enum.Enum):
    """What the words say about the end of the turn (see `judge`)."""

    CLOSED = "closed"  # a question, an exclamation, a short answer ("Yes.", "好的。")
    FULL_STOP = "full_stop"  # a full stop, a closing phrase or particle: finished, unless more comes
    UNFINISHED = "unfinished"  # clearly mid-sentence ("and", "parce que", "然后")
    THINKING = "thinking"  # ends on a filler: the user is finding their words
    DIGITS = "digits"  # a number being dictated ("one zero zero zero one")
    UNKNOWN = "unknown"  # no words yet, or nothing to go on


def judge(text: str | None, language: str | None) -> Verdict:
    """Classify the words so far. Whisper ends nearly every segment with a full stop
    ("And so my fellow Americans.", "Sure, my ID number is."), so a full stop alone is
    weaker evidence than a question mark or a closing phrase."""
    stripped = (text or "").strip().rstrip(_TRAILING_CLOSERS)
    if not stripped:
        return Verdict.UNKNOWN
    core = stripped.rstrip("".join(_TERMINAL_PUNCT) + "".join(_UNFINISHED_PUNCT) + " ")
    tokens = word_tokens(core)
    if (tokens and tokens[-1] in _FILLERS) or (has_han(core) and _zh_core(core).endswith(_ZH_FILLERS)):
        return Verdict.THINKING
    if _dictating_digits(core, tokens):
        return Verdict.DIGITS
    verdict = looks_complete(stripped, language)
    if verdict is False:
        return Verdict.UNFINISHED
    if verdict is None:
        return Verdict.UNKNOWN
    if stripped.endswith(_QUESTION_OR_EXCLAIM) or _is_short_answer(core, guess_language(stripped, language)):
        return Verdict.CLOSED
    # a full stop, a closing phrase or particle ("了" also marks aspect mid-sentence)
    return Verdict.FULL_STOP


def _is_short_answer(core: str, lang: str | None) -> bool:
    """ "Yes.", "Thank you.", "好的。": a whole turn by itself."""
    if lang == "zh":
        return _zh_core(core) in _SHORT_COMPLETE["zh"]
    return lang in _SHORT_COMPLETE and " ".join(word_tokens(core)) in _SHORT_COMPLETE[lang]


def _dictating_digits(core: str, tokens: list[str]) -> bool:
    """Does the turn end inside a string of digits? (Whisper writes "1,001 90210.")"""
    if not core:
        return False
    last = core[-1]
    if last.isdigit():
        return sum(ch.isdigit() for ch in core) >= _DIGIT_STRING
    if tokens and tokens[-1] in _NUMBER_WORDS:
        return sum(t in _NUMBER_WORDS or t.isdigit() for t in tokens) >= _DIGIT_STRING
    if last in _ZH_DIGITS:
        return sum(ch in _ZH_DIGITS for ch in core) >= _DIGIT_STRING
    return False


def end_of_turn_silence_ms(text: str | None, language: str | None, speech_ms: float, settings: EndpointSettings) -> int:
    """How much silence ends the turn, from everything known at this pause.

    `settings.policy == "text"` is the older rule (the transcript's look alone). The
    fusion also weighs how long the user has spoken: a short turn that looks finished
    ("I'm fine.", "Bonjour !") ends fast, while after a longer one a full stop is
    Whisper's habit more than evidence, so it waits `statement_silence_ms` (the reply
    is prepared during the pause, so the wait is nearly all the delay it adds).
    A filler at the end lets the wait grow past the usual cap (a thinking pause)."""
    if settings.policy == "text":
        return required_silence_ms(text, language, settings)
    verdict = judge(text, language)
    if verdict is Verdict.THINKING:
        return max(settings.thinking_silence_ms, settings.incomplete_silence_ms)
    if verdict is Verdict.CLOSED:
        wanted = settings.complete_silence_ms
    elif verdict is Verdict.FULL_STOP:
        short = speech_ms < settings.short_turn_ms
        wanted = settings.complete_silence_ms if short else settings.statement_silence_ms
    elif verdict is Verdict.DIGITS:
        wanted = settings.digits_silence_ms
    elif verdict is Verdict.UNFINISHED:
        wanted = settings.incomplete_silence_ms
    else:
        wanted = settings.default_silence_ms
    return min(wanted, settings.max_silence_ms)


# -- public API ------------------------------------------------------------------------


def looks_complete(text: str, language: str | None) -> bool | None:
    """True: sounds finished. False: clearly mid-sentence. None: can't tell.

    Order matters: trailing comma/ellipsis, then the last words (Whisper's final
    full stop is not evidence), then terminal punctuation.
    """
    stripped = (text or "").strip().rstrip(_TRAILING_CLOSERS)
    if not stripped:
        return None
    if stripped.endswith(_UNFINISHED_PUNCT):
        return False
    lang = guess_language(stripped, language)
    question = stripped.endswith(_QUESTION_OR_EXCLAIM)
    if lang is not None:
        verdict = _unfinished_words(stripped, lang, question)
        if verdict is not None:
            return verdict
    return True if stripped.endswith(_TERMINAL_PUNCT) else None


def required_silence_ms(text: str | None, language: str | None, settings: EndpointSettings) -> int:
    """How much silence ends the turn given the (speculative) transcript so far."""
    verdict = looks_complete(text, language) if text and text.strip() else None
    if verdict is True:
        wanted = settings.complete_silence_ms
    elif verdict is False:
        wanted = settings.incomplete_silence_ms
    else:
        wanted = settings.default_silence_ms
    return min(wanted, settings.max_silence_ms)


def _all_backchannel(units: list[str], joiner: str) -> bool:
    """Can `units` be split into known backchannels ("mhm yeah", "嗯嗯对对")?"""
    n = len(units)
    ok = [True] + [False] * n  # ok[i]: units[:i] splits into backchannels
    for end in range(1, n + 1):
        ok[end] = any(
            ok[start] and joiner.join(units[start:end]) in _ALL_BACKCHANNELS for start in range(max(0, end - 3), end)
        )
    return ok[n]


def is_backchannel(text: str, language: str | None) -> bool:
    """'mhm', 'yeah yeah', '嗯嗯对', 'ah oui d'accord': listening noises, not a bid for the turn.

    Used while the companion speaks: a backchannel must not interrupt it.
    Case, punctuation and repetition are ignored; every language's list counts
    because Whisper's language guess on one word is unreliable.
    """
    if HAN_CHAR.search(text or ""):
        units = list(_zh_core(text))
        joiner = ""
        # Chinese backchannels are one or two characters; allow a few repeats ("对对对对").
        limit = 2 * _BACKCHANNEL_MAX_TOKENS
    else:
        units = word_tokens(text or "")
        joiner = " "
        limit = _BACKCHANNEL_MAX_TOKENS
    if not units or len(units) > limit:
        return False
    return _all_backchannel(units, joiner)
