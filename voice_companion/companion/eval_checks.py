"""Automatic checks of one companion reply that need no judge model.

scripts/eval_conversation.py runs them over a fixed prompt set per LLM tier. Each is a
plain heuristic (script ratios, word lists, n-gram counts), so a reply can be checked
offline in microseconds; tests/test_eval_checks.py shows each one failing a bad reply.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from voice_companion.conversation.reply_length import HELP_DESK
from voice_companion.core.language import HAN

_CJK = HAN
_LETTERS = r"A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
# One token per Latin word (apostrophes split: "c'est" -> c, est) or per Chinese character.
TOKEN = re.compile(rf"[{_LETTERS}]+|[{_CJK}]")
CJK_CHAR = re.compile(rf"[{_CJK}]")

# Words that mark a language; ambiguous ones ("on", "son", "a", "comment") are left out.
FRENCH_WORDS = frozenset(
    "je j tu il elle nous vous ils elles le la les un une des du de et est c ce cette ces "
    "qu que qui pas ne mon ma mes ton ta tes sa ses notre votre avec pour dans sur très "
    "bien oui bonjour bonsoir merci au aux suis es sont ai as avez être avoir mais ou "
    "aussi moi toi lui leur y en peux veux fait dit dire ça".split()
)
ENGLISH_WORDS = frozenset(
    "the and is are was were you your i my me we our it that this to of with for have "
    "has be do does did so just can what how not but if they he she there here would "
    "will about like good day really in say".split()
)
FRENCH_ACCENTS = re.compile(r"[éèêëàâçîïôûùœ]")
# A quoted phrase is the phrase being taught, not the language of the reply.
QUOTED = re.compile(r"«[^»]*»|“[^”]*”|\"[^\"]*\"")

REFUSALS = (
    # English: a refusal, or stepping out of the companion role
    "i can't assist",
    "i cannot assist",
    "i can't help with",
    "i cannot help with",
    "i'm sorry, but i can't",
    "i am sorry, but i cannot",
    "i'm sorry, but i cannot",
    "unable to provide the help",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i can't provide",
    "i cannot provide",
    "i can't engage",
    "i cannot engage",
    "as an ai",
    "i'm just an ai",
    "i am just an ai",
    "i'm an ai language model",
    # Chinese
    "我无法提供",
    "我无法帮助",
    "我不能提供",
    "我不能帮助",
    "无法协助",
    "我不能回答",
    "我无法回答",
    "作为一个ai",
    "作为一个人工智能",
    "作为人工智能",
    "作为ai",
    "抱歉，我不能",
    "对不起，我不能",
    # French
    "je ne peux pas vous aider",
    "je ne peux pas t'aider",
    "je ne peux pas répondre",
    "en tant qu'ia",
    "en tant qu'intelligence artificielle",
)

# Claiming not to know what the prompt says ("I'm sorry, but I don't have that information").
IGNORANCE = re.compile(
    r"(?:don'?t|do not) (?:have|know) (?:that|this|any) (?:information|detail)|i (?:don'?t|do not) (?:know|remember)"
    r"|i'?m not sure (?:who|what|when|where)|no (?:information|record) (?:about|of)|i can'?t recall"
    r"|我不知道|我不记得|没有(?:这方面的|相关的)?(?:信息|记录)|je ne sais pas|je ne me souviens pas",
    re.IGNORECASE,
)
# Comfort that blames ("有没有想过找找自己的原因呢？", "maybe it was your fault").
BLAME = re.compile(
    r"your (?:own )?fault|what you did wrong|you should have|did you (?:do|say) something"
    r"|(?:自己|你)的原因|你自己的问题|是不是你|反思一下|ta faute|tu aurais d[ûu]",
    re.IGNORECASE,
)
# What a listener must never hear: stage directions and card macros.
UNSPOKEN = re.compile(r"\*|\{\{|\}\}|<(?:USER|BOT|START)>|\((?:smiles?|laughs?|sighs?|nods?|giggles?)\b", re.I)

LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|#+)\s", re.MULTILINE)
MARKDOWN = re.compile(r"\*\*|__|```|^\s*\|", re.MULTILINE)
FINISHED = re.compile(r"[.!?。！？…~～)）]['\"»”’」』)）\s]*$|[\U0001f300-\U0001faff]\s*$")
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")

# Spoken length: words for English/French, characters for Chinese.
WORDS_RANGE = (3, 60)
CJK_CHARS_RANGE = (5, 120)


@dataclass(frozen=True)
class Case:
    """One prompt of the evaluation set and what its reply must do."""

    id: str
    kind: str  # comfort, small_talk, recall, chinese, french, topic_change, distress, ...
    lang: str  # the language the reply must be in: "en", "zh" or "fr"
    user: str
    history: tuple[str, ...] = ()  # earlier turns: user, assistant, user, ...
    expect: tuple[tuple[str, ...], ...] = ()  # each group: at least one of these must appear
    avoid: tuple[str, ...] = ()  # none of these may appear (e.g. the topic the user dropped)
    persona: str = "mia"  # who answers: a bundled persona or a card of the prompt set
    examples: tuple[str, ...] = ()  # the persona's example lines: never said word for word


def _norm(text: str) -> str:
    return text.casefold().replace("’", "'").replace("＇", "'")


def tokens(text: str) -> list[str]:
    return [t.casefold() for t in TOKEN.findall(text)]


def cjk_ratio(text: str) -> float:
    """Share of Chinese characters among tokens; a Latin word counts once, like a character."""
    toks = tokens(text)
    return sum(1 for t in toks if CJK_CHAR.fullmatch(t)) / len(toks) if toks else 0.0


def detect_language(text: str) -> str:
    """'zh', 'fr', 'en', or '' for no words at all."""
    if not tokens(text):
        return ""
    if cjk_ratio(text) >= 0.5:
        return "zh"
    french, english = _language_votes(QUOTED.sub(" ", text))
    if french == english == 0:  # only the quoted phrase says anything: 'On dit « merci ».'
        french, english = _language_votes(text)
    return "fr" if french > english else "en"


def _language_votes(text: str) -> tuple[int, int]:
    toks = tokens(text)
    french = sum(1 for t in toks if t in FRENCH_WORDS or FRENCH_ACCENTS.search(t))
    return french, sum(1 for t in toks if t in ENGLISH_WORDS)


def has_loop(text: str) -> bool:
    """A phrase said again: a long n-gram twice or a short one three times.

    Chinese counts characters, so its n-grams are twice as long as the word ones.
    """
    toks = tokens(text)
    scale = 2 if cjk_ratio(text) >= 0.5 else 1
    for n, limit in ((5 * scale, 2), (3 * scale, 3)):
        grams = Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
        if grams and max(grams.values()) >= limit:
            return True
    return False


def is_refusal(text: str) -> bool:
    """Compared without spaces, so "作为一个 AI" and "I  can't assist" match too."""
    flat = re.sub(r"\s+", "", _norm(text))
    return any(re.sub(r"\s+", "", phrase) in flat for phrase in REFUSALS)


def spoken_length(text: str) -> tuple[int, tuple[int, int]]:
    """The reply's length for speech and the range that fits it."""
    if cjk_ratio(text) >= 0.5:
        return len(CJK_CHAR.findall(text)), CJK_CHARS_RANGE
    return len(tokens(text)), WORDS_RANGE


# ------------------------------------------------------------------- checks --
# Each takes (reply, case) and returns True (pass), False (fail) or None (not applicable).


def check_non_empty(reply: str, case: Case) -> bool:
    return bool(tokens(reply))


def check_language(reply: str, case: Case) -> bool:
    return detect_language(reply) == case.lang


def check_no_loop(reply: str, case: Case) -> bool:
    return not has_loop(reply)


def check_no_refusal(reply: str, case: Case) -> bool:
    return not is_refusal(reply)


def check_expected(reply: str, case: Case) -> bool | None:
    """Facts recalled, the phrase taught, care shown; the dropped topic left alone."""
    if not case.expect and not case.avoid:
        return None
    text = _norm(reply)
    found = all(any(_norm(word) in text for word in group) for group in case.expect)
    return found and not any(_norm(word) in text for word in case.avoid)


def check_length(reply: str, case: Case) -> bool:
    count, (low, high) = spoken_length(reply)
    return low <= count <= high


def check_finished(reply: str, case: Case) -> bool:
    """Ends like a sentence: a reply cut off by max_tokens stops mid-word when spoken."""
    return bool(FINISHED.search(reply))


def check_no_help_desk(reply: str, case: Case) -> bool:
    """No support-agent phrases ("How can I help you today?", "Let me know if…")."""
    return HELP_DESK.search(reply) is None


def check_knows_what_it_was_told(reply: str, case: Case) -> bool | None:
    """A question about something in the prompt is not answered "I don't have that information"."""
    if case.kind not in ("recall", "memory"):
        return None
    return IGNORANCE.search(reply) is None


def check_no_blame(reply: str, case: Case) -> bool | None:
    if case.kind not in ("comfort", "feeling"):
        return None
    return BLAME.search(reply) is None


def check_own_words(reply: str, case: Case) -> bool | None:
    """The persona's example lines are a style, not lines to say again."""
    if not case.examples:
        return None
    text = _norm(reply)
    return not any(len(line) > 12 and _norm(line) in text for line in case.examples)


def check_nothing_unspoken(reply: str, case: Case) -> bool:
    """No stage direction or macro in what is said aloud."""
    return UNSPOKEN.search(reply) is None


def check_plain(reply: str, case: Case) -> bool:
    """No lists, markdown or emoji: they read badly aloud."""
    return not (LIST_LINE.search(reply) or MARKDOWN.search(reply) or EMOJI.search(reply))


CHECKS: dict[str, Callable[[str, Case], bool | None]] = {
    "non_empty": check_non_empty,
    "language": check_language,
    "no_loop": check_no_loop,
    "no_refusal": check_no_refusal,
    "expected": check_expected,
    "length": check_length,
    "finished": check_finished,
    "plain": check_plain,
    "no_help_desk": check_no_help_desk,
    "knows_what_it_was_told": check_knows_what_it_was_told,
    "no_blame": check_no_blame,
    "own_words": check_own_words,
    "nothing_unspoken": check_nothing_unspoken,
}


def run_checks(reply: str, case: Case) -> dict[str, bool]:
    """Every applicable check's result for one reply."""
    results = {name: check(reply, case) for name, check in CHECKS.items()}
    return {name: ok for name, ok in results.items() if ok is not None}


@dataclass(frozen=True)
class EvalSet:
    companion: str  # the companion's name in the persona
    facts: tuple[str, ...]  # what the companion knows about the user (system prompt)
    cases: tuple[Case, ...]
    cards: dict[str, dict] = field(default_factory=dict)  # name -> a character card (V2 JSON)


def load_eval_set(path: str | Path) -> EvalSet:
    """Read the prompt set (scripts/eval_prompts.toml)."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    cases = tuple(
        Case(
            id=c["id"],
            kind=c["kind"],
            lang=c["lang"],
            user=c["user"],
            history=tuple(c.get("history", ())),
            expect=tuple(tuple(group) for group in c.get("expect", ())),
            avoid=tuple(c.get("avoid", ())),
            persona=c.get("persona", "mia"),
        )
        for c in data["case"]
    )
    profile = data.get("profile", {})
    cards = {
        name: {"spec": "chara_card_v2", "spec_version": "2.0", "data": card}
        for name, card in data.get("cards", {}).items()
    }
    return EvalSet(profile.get("companion", "Mia"), tuple(profile.get("facts", ())), cases, cards)
