"""Facts about the user from what they say, by pattern (English, Chinese, French).

Patterns are instant and never invent anything, so they run after every turn; an
LLM pass (fact_llm.py) catches what they miss. A fact with a `key` holds one slot
("name", "home", "rel:sister"): saying "I live in Lyon" later replaces "Paris".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voice_companion.core.text import CJK


@dataclass(frozen=True)
class Fact:
    text: str
    key: str = ""
    importance: float = 0.6
    confidence: float = 0.8


_V = r"(?P<v>[^,.;!?，。！？；\n]+)"  # a value runs to the end of the clause
_ZV = rf"(?P<v>[{CJK}A-Za-z0-9]{{1,12}})"  # a Chinese value: a short run, no punctuation
_NAME = r"(?P<v>(?-i:[A-Z])[\w'-]*(?: (?-i:[A-Z])[\w'-]*)?)"  # capitalised: "called me" is no name
_ANY_NAME = r"(?P<v>[\w'-]+(?: (?-i:[A-Z])[\w'-]*)?)"
_ZNAME = rf"(?P<v>[{CJK}A-Za-z]{{1,4}})"
REL_EN = (
    "sister|brother|mom|mum|mother|dad|father|wife|husband|partner|girlfriend|boyfriend|son|daughter|"
    "best friend|friend|cat|dog|puppy|kitten|pet|grandma|grandmother|grandpa|grandfather|aunt|uncle|"
    "cousin|boss|roommate|hamster|rabbit|parrot|baby|niece|nephew"
)
REL_ZH = (
    "姐姐|妹妹|哥哥|弟弟|妈妈|爸爸|母亲|父亲|老婆|老公|妻子|丈夫|男朋友|女朋友|儿子|女儿|好朋友|朋友|"
    "小猫|小狗|猫咪|猫|狗|奶奶|爷爷|外婆|外公|老板|室友|宝宝"
)
REL_FR = "sœur|soeur|frère|mère|père|femme|mari|copine|copain|fils|fille|chatte|chat|chienne|chien|amie|ami"

_HOW = r"(?:nights|days|evenings|mornings|weekends|part-time|full-time|mostly|now|still|currently|remotely)"
_AKA = r"(?:,? (?-i:[A-Z])[\w'-]*)?"  # "my sister Lea moved to…": the name, not captured here
_LIVES = r"(?:(?:now|still) )?(?:lives in|is living in|(?:just |recently |finally )?moved (?:back )?to)"

# (pattern, template, key, importance, confidence); {v} is the captured value.
PATTERNS: list[tuple[str, str, str, float, float]] = [
    (rf"\bmy name is {_ANY_NAME}", "The user's name is {v}", "name", 1.0, 0.95),
    (rf"\b(?:call me|i'm called|i am called) {_NAME}", "The user's name is {v}", "name", 1.0, 0.9),
    (rf"\bi (?:live|am living|'m living) in {_V}", "The user lives in {v}", "home", 0.9, 0.9),
    (rf"\bi (?:just )?moved to {_V}", "The user lives in {v}", "home", 0.9, 0.8),
    (rf"\bi(?:'m| am) (?:originally )?from {_V}", "The user is from {v}", "origin", 0.8, 0.9),
    (r"\bi(?:'m| am) (?P<v>\d{1,3}) years old", "The user is {v} years old", "age", 0.8, 0.9),
    (rf"\bi work (?:{_HOW} )?(?P<p>as|at|for|in) {_V}", "The user works {p} {v}", "work", 0.8, 0.85),
    (rf"\bmy job is {_V}", "The user's job is {v}", "work", 0.8, 0.85),
    (
        rf"\bmy (?P<k>{REL_EN})(?:'s name is| is called| is named| called| named)\s+{_NAME}",
        "The user's {k} is called {v}",
        "rel:{k}",
        0.9,
        0.9,
    ),
    (rf"\bmy (?P<k>{REL_EN}),? {_NAME}\b", "The user's {k} is called {v}", "rel:{k}", 0.9, 0.75),
    (rf"\bi have an? (?P<k>{REL_EN}) (?:called|named) {_NAME}", "The user's {k} is called {v}", "rel:{k}", 0.9, 0.9),
    (rf"\bmy (?P<k>{REL_EN}){_AKA} {_LIVES} {_V}", "The user's {k} lives in {v}", "home:{k}", 0.8, 0.85),
    (rf"\bi(?:'m| am) allergic to {_V}", "The user is allergic to {v}", "", 0.9, 0.9),
    (rf"\bi(?:'m| am) (?P<p>learning|studying) {_V}", "The user is {p} {v}", "", 0.7, 0.8),
    (rf"\bi (?P<p>love|like|enjoy|hate|adore|play|collect) {_V}", "The user {p}s {v}", "", 0.5, 0.7),
    (
        rf"\bmy (?P<k>favou?rite \w+|birthday|\w+ day|\w+ exam|exam|\w+ name) is {_V}",
        "The user's {k} is {v}",
        "my:{k}",
        0.7,
        0.8,
    ),
    (rf"我叫{_ZNAME}", "用户的名字是{v}", "name", 1.0, 0.85),
    (rf"我的名字(?:是|叫){_ZNAME}", "用户的名字是{v}", "name", 1.0, 0.95),
    (rf"我(?:现在)?住在{_ZV}", "用户住在{v}", "home", 0.9, 0.9),
    (rf"我的?(?P<k>{REL_ZH})(?:现在)?(?:住在|搬到了?|搬去了?){_ZV}", "用户的{k}住在{v}", "home:{k}", 0.8, 0.85),
    (rf"我是{_ZV}人", "用户是{v}人", "origin", 0.8, 0.8),
    (r"我今年(?P<v>[0-9一二三四五六七八九十]{1,4})岁", "用户今年{v}岁", "age", 0.8, 0.9),
    (rf"我在{_ZV}(?:工作|上班)", "用户在{v}工作", "work", 0.8, 0.85),
    (rf"我是一(?:名|位|个){_ZV}", "用户是一名{v}", "work", 0.7, 0.7),
    (rf"我的?(?P<k>{REL_ZH})(?:叫|的名字是|的名字叫|名字叫){_ZNAME}", "用户的{k}叫{v}", "rel:{k}", 0.9, 0.9),
    (
        rf"我(?:养了|有)(?:一|两)?(?:只|条|个)?(?P<k>{REL_ZH})[，,]?(?:叫|名叫|名字叫){_ZNAME}",
        "用户的{k}叫{v}",
        "rel:{k}",
        0.9,
        0.9,
    ),
    (rf"我对{_ZV}过敏", "用户对{v}过敏", "", 0.9, 0.9),
    (rf"我(?:正)?在学{_ZV}", "用户在学{v}", "", 0.7, 0.8),
    (rf"我最喜欢的(?P<k>[{CJK}]{{1,4}}?)是{_ZV}", "用户最喜欢的{k}是{v}", "my:{k}", 0.7, 0.85),
    (rf"我的(?P<k>生日|考试|工作|专业|爱好)是{_ZV}", "用户的{k}是{v}", "my:{k}", 0.7, 0.85),
    (rf"我(?P<p>很喜欢|喜欢|爱|讨厌|不喜欢){_ZV}", "用户{p}{v}", "", 0.5, 0.7),
    (r"\bje m'appelle (?P<v>[\w'-]+)", "L'utilisateur s'appelle {v}", "name", 1.0, 0.95),
    (rf"\bj'habite (?P<p>à|a|au|en|aux) {_V}", "L'utilisateur habite {p} {v}", "home", 0.9, 0.9),
    (rf"\bje vis (?P<p>à|a|au|en|aux) {_V}", "L'utilisateur habite {p} {v}", "home", 0.9, 0.85),
    (
        rf"\b(?P<d>mon|ma) (?P<k>{REL_FR}) s'appelle (?P<v>[\w'-]+)",
        "{d} {k} de l'utilisateur s'appelle {v}",
        "rel:{k}",
        0.9,
        0.9,
    ),
    (rf"\bje suis allergique (?P<p>à|au|aux) {_V}", "L'utilisateur est allergique {p} {v}", "", 0.9, 0.9),
    (rf"\bje travaille (?P<p>comme|à|chez|dans) {_V}", "L'utilisateur travaille {p} {v}", "work", 0.8, 0.85),
    (r"\bj'ai (?P<v>\d{1,3}) ans\b", "L'utilisateur a {v} ans", "age", 0.8, 0.9),
    (rf"\bj'(?P<p>aime|adore) {_V}", "L'utilisateur {p} {v}", "", 0.5, 0.7),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), t, k, i, c) for p, t, k, i, c in PATTERNS]
_CUT = re.compile(
    r"\s+(?:and|but|because|so|since|though|which|who|et|mais|parce|car|donc)\b.*|"
    r"(?:但是|但|因为|所以|而且|然后|可是|不过|也|呢|啊|呀|吧|了).*$",
    re.IGNORECASE,
)
# when it happened is not part of what it is: "moved to Porto last spring" → "Porto"
_WHEN_TAIL = re.compile(
    r"\s+(?:(?:last|this|next) (?:week|weekend|month|year|spring|summer|autumn|fall|winter)|"
    r"(?:a (?:few|couple of) |\d+ |two |three )?(?:years?|months?|weeks?|days?) ago|"
    r"yesterday|today|recently|in (?:19|20)\d\d)$",
    re.IGNORECASE,
)
_EMPTY = {"it", "that", "this", "them", "you", "me", "i", "to", "a", "the", "there", "here", "ça", "le", "la", "les"}
_QUESTION = re.compile(
    r"^\s*(?:what|where|who|whom|how|why|when|which|do|does|did|is|are|can|could|would|"
    r"will|quel|quelle|où|comment|est-ce)\b|什么|哪|谁|吗|几|多少|怎么",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]?")


def extract(text: str) -> list[Fact]:
    """Facts stated in `text` (questions state nothing), one per key, in order."""
    found: dict[str, tuple[int, Fact]] = {}
    for sentence_match in _SENTENCE.finditer(text):
        sentence = sentence_match.group()
        if _is_question(sentence):
            continue
        for regex, template, key, importance, confidence in _COMPILED:
            for match in regex.finditer(sentence):
                groups = {k: (v or "").strip() for k, v in match.groupdict().items()}
                groups["v"] = _clean(groups["v"])
                if not groups["v"] or groups["v"].lower() in _EMPTY:
                    continue
                groups["k"] = groups.get("k", "").lower()
                groups["d"] = {"mon": "Le", "ma": "La"}.get(groups.get("d", "").lower(), "")
                fact = Fact(template.format(**groups), key.format(**groups), importance, confidence)
                found.setdefault(fact.key or fact.text, (sentence_match.start() + match.start(), fact))
    return [fact for _, fact in sorted(found.values(), key=lambda item: item[0])]


# A question about a slot facts are kept in ("What is my job?") is answered by the fact in
# it whatever words that was told in ("I work nights as a nurse…"): no word is shared,
# and sentence vectors ranked that line 104th for the question (scripts/bench_recall.py).
_SLOT_CUES = {
    "work": r"\b(?:job|work|occupation|profession|career|for a living|travail|métier|boulot)\b|工作|职业|做什么的",
    "home": r"\b(?:live|lives|home)\b|(?<!for a )\bliving\b|住在?哪|\bhabite\b",
    "origin": r"\bwhere am i from\b|哪里人|\bd'où\b",
    "age": r"\bhow old am i\b|几岁|多大了|\bquel âge\b",
}
_SLOTS = [(key, re.compile(cue, re.IGNORECASE)) for key, cue in _SLOT_CUES.items()]
_ABOUT_ME = re.compile(r"\b(?:i|my|me|mine|je|j'|mon|ma|mes)\b|我", re.IGNORECASE)  # not "What is your job?"
_WHOSE = re.compile(rf"\bmy ({REL_EN})\b|我的?({REL_ZH})", re.IGNORECASE)


def slots_asked(question: str) -> list[str]:
    """The fact keys a question asks about: "What is my job?" → ["work"]; about someone
    else's, theirs: "Where does my sister live now?" → ["home:sister"]."""
    if not _is_question(question) or not _ABOUT_ME.search(question):
        return []
    slots = [key for key, cue in _SLOTS if cue.search(question)]
    whose = [(en or zh).lower() for en, zh in _WHOSE.findall(question)]
    return [f"{slot}:{who}" for slot in slots for who in whose] if whose else slots


def states_something(text: str) -> bool:
    """Whether any sentence is a statement: questions teach nothing about the user."""
    return any(not _is_question(s) for s in _SENTENCE.findall(text) if s.strip())


def _is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith(("?", "？")) or _QUESTION.search(sentence) is not None


def _clean(value: str) -> str:
    value = _WHEN_TAIL.sub("", _CUT.sub("", value)).strip(" \t'\"“”‘’")
    words = value.split()
    return " ".join(words[:6]) if len(words) > 1 else value[:16]
