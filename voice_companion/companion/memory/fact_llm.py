"""Facts about the user written by the LLM, kept only when the user's words back them.

Patterns (facts.py) miss facts said in unusual ways; a short prompt to the same LLM
catches more. Small models also invent things, so every line must be grounded: most
of its content words (or, in Chinese, characters) must appear in what the user said.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import aclosing

from voice_companion.companion.memory.facts import Fact
from voice_companion.core.text import CJK, has_cjk, keywords
from voice_companion.engines.llm import ChatMessage, GenerationOptions, LLMBackend

PROMPT = (
    "Write down lasting facts the user states about themselves in their message: name, home, work, "
    'family, pets, likes, health, plans. One short fact per line, starting with "The user" '
    '(Chinese: "用户"). Write NONE if there are none. No other text.'
)
OPTIONS = GenerationOptions(max_tokens=64, temperature=0.0, top_p=1.0, repeat_penalty=1.1)
CONFIDENCE = 0.6
_PREFIX = re.compile(r"^\s*(?:[-*•]|\d+[.)])?\s*")
_SUBJECT = re.compile(r"^(?:the user|user|用户|l'utilisateur)\b", re.IGNORECASE)
_NOT_CONTENT = {
    "user",
    "users",
    "user's",
    "utilisateur",
    "l'utilisateur",
    "likes",
    "loves",
    "has",
    "lives",
    "works",
    "enjoys",
    "wants",
    "named",
    "called",
    "name",
    "favorite",
    "favourite",
}


async def extract_with_llm(
    llm: LLMBackend, user_text: str, busy: Callable[[], bool] = lambda: False
) -> list[Fact] | None:
    """Grounded facts, or None when the live conversation needed the LLM first (skipped)."""
    messages = [ChatMessage("system", PROMPT), ChatMessage("user", user_text)]
    parts: list[str] = []
    async with aclosing(llm.stream(messages, OPTIONS)) as deltas:
        async for delta in deltas:
            if busy():
                return None  # closing the stream stops generation at once
            parts.append(delta)
    return parse("".join(parts), user_text)


def parse(output: str, user_text: str) -> list[Fact]:
    facts = []
    for line in output.splitlines():
        line = _PREFIX.sub("", line).strip().rstrip(".。")
        if not _SUBJECT.match(line) or len(line) > 160 or not grounded(line, user_text):
            continue
        facts.append(Fact(line, "", 0.5, CONFIDENCE))
    return list({f.text.lower(): f for f in facts}.values())


def grounded(fact: str, source: str) -> bool:
    """Most of the fact's content must come from the user's own words."""
    body = _SUBJECT.sub("", fact)
    if has_cjk(body):
        chars = [c for c in re.findall(f"[{CJK}]", body) if c not in "用户的是了在"]
        return bool(chars) and sum(c in source for c in chars) >= 0.7 * len(chars)
    words = [w for w in keywords(body) if w not in _NOT_CONTENT]
    lowered = source.lower()
    return bool(words) and sum(w in lowered or w.rstrip("s") in lowered for w in words) >= 0.6 * len(words)
