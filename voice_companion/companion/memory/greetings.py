"""The greeting of the next call, written at the end of this one.

A friend picks up from last time in their own words ("How did the dinner with Lea
go?"); quoting the user's last line back ("Last time you told me: "Who is coming to
visit me this weekend?".") on every call was the complaint (issue 17). So when a
session ends, the LLM, whose cache holds the session's prompt, writes the next
greeting; it is kept in the store with the session it comes from, and used only if
that session is still the last one. A greeting in the wrong language, too long or
quoting the user is dropped: the persona's own greeting is said instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from voice_companion.companion.memory.types import MemoryStore
from voice_companion.core.language import guess_language, word_units
from voice_companion.engines.llm import GenerationOptions

log = logging.getLogger(__name__)
META_KEY = "next_greeting"
REQUEST = {
    "en": (
        "(The call is ending. Write only the one short sentence you will say when the user calls "
        "next time: greet them and ask about one thing they told you today, in your own words, "
        "without quoting them.)"
    ),
    "zh": (
        "（通话要结束了。只写一句下次用户打来时你会说的话："
        "跟他打招呼，用你自己的话问起他今天说过的一件事，不要引用原话。）"
    ),
    "fr": (
        "(L'appel se termine. Écris seulement la phrase courte que tu diras quand l'utilisateur "
        "rappellera : salue-le et demande des nouvelles d'une chose qu'il t'a dite aujourd'hui, "
        "avec tes propres mots, sans le citer.)"
    ),
}
OPTIONS = GenerationOptions(max_tokens=48, temperature=0.7, top_p=0.9, repeat_penalty=1.1, wrap_up_words=12)
MAX_WORDS = 35
QUOTED_RUN = 6  # this many of the user's words in a row: a quote, not a friend's words


def clean(text: str, language: str, said: Sequence[str]) -> str:
    """The greeting as it will be said, or "" when it does not fit."""
    text = re.sub(r"^\s*(?:[\w\u4e00-\u9fff]{1,12}\s*[:：])?\s*", "", text.strip()).strip().strip('"“”「」')
    units = word_units(text)
    if not units or len(units) > MAX_WORDS * (2 if language == "zh" else 1):
        return ""
    if guess_language(text) != language:
        return ""
    for line in said:
        words = word_units(line)
        runs = {tuple(words[i : i + QUOTED_RUN]) for i in range(len(words) - QUOTED_RUN + 1)}
        if any(tuple(units[i : i + QUOTED_RUN]) in runs for i in range(len(units) - QUOTED_RUN + 1)):
            return ""
    return text


def save(store: MemoryStore, session_id: int, greeting: str) -> None:
    """Best effort, like the window: a greeting lost costs the persona's own."""
    try:
        store.set_meta(META_KEY, json.dumps({"session": session_id, "text": greeting}, ensure_ascii=False))
    except Exception as exc:  # noqa: BLE001 - e.g. a full disk: the session still ends
        log.warning("could not keep the next greeting: %s", exc)


def load(store: MemoryStore, session_id: int) -> str:
    """The greeting written at the end of `session_id` ("" if none, or for another one)."""
    raw = store.get_meta(META_KEY)
    try:
        data = json.loads(raw) if raw else {}
        return str(data.get("text", "")) if data.get("session") == session_id else ""
    except (ValueError, AttributeError):
        return ""
