"""Character-card macros, filled in before anything is said or sent to the LLM.

Cards written for SillyTavern use its macros; read aloud they broke the call ("Hi
{{user}}, I am {{char}}!"). The V2/V3 specs name {{char}} and {{user}} (and the legacy
<BOT> and <USER>); SillyTavern adds {{time}}, {{date}}, {{weekday}}, {{random:a,b}},
{{pick:a,b}}, {{newline}}, {{trim}}, {{noop}} and comments {{// …}}. A macro we do not
know is dropped rather than spoken. Without the user's name, {{user}} is left out and
the punctuation around it tidied ("Hi {{user}}, welcome" → "Hi, welcome").
"""

from __future__ import annotations

import random
import re
from datetime import datetime

_MACRO = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}|<(BOT|USER|START)>", re.IGNORECASE)
_ORPHAN_COMMA = re.compile(r"\s+([,.!?;:，。！？])|([,，])\s*(?=[,.!?，。！？])")
_SPACES = re.compile(r"[ \t]{2,}")
# what the memory's name fact says (facts.py writes these), to fill {{user}}
_NAME_FACT = re.compile(r"(?:the user's name is|用户的名字是|l'utilisateur s'appelle)\s*(.+?)[.。]?$", re.IGNORECASE)


def name_in(fact: str) -> str:
    """The user's name in a name fact ("The user's name is Sam" → "Sam"), else ""."""
    match = _NAME_FACT.match(fact.strip())
    return match.group(1).strip() if match else ""


def fill(text: str, char: str, user: str = "", now: datetime | None = None, rng: random.Random | None = None) -> str:
    """`text` with every macro replaced; `user` "" when the user's name is not known."""
    if "{{" not in text and "<" not in text:
        return text
    when = now or datetime.now()
    pick = rng or random.Random()

    def replace(match: re.Match[str]) -> str:
        if match.group(2):
            legacy = match.group(2).upper()
            return {"BOT": char, "USER": user}.get(legacy, "")
        body = match.group(1)
        name, _, argument = body.partition(":")
        key = name.strip().lower()
        if key == "char":
            return char
        if key == "user":
            return user
        if key == "time":
            return when.strftime("%H:%M")
        if key == "date":
            return when.strftime("%d %B %Y").lstrip("0")
        if key == "weekday":
            return when.strftime("%A")
        if key == "newline":
            return "\n"
        if key in ("random", "pick") and argument:
            return pick.choice([a.strip() for a in argument.split(",") if a.strip()] or [""])
        return ""  # {{trim}}, {{noop}}, {{// comment}} and anything unknown: never spoken

    filled = _MACRO.sub(replace, text)
    return _tidy(filled) if filled != text else filled


def _tidy(text: str) -> str:
    """Spaces and commas a removed macro left behind."""
    lines = []
    for line in text.split("\n"):
        line = _ORPHAN_COMMA.sub(lambda m: m.group(1) or "", line)
        line = _SPACES.sub(" ", line).strip()
        stripped = line.lstrip(",， ")
        if stripped != line and stripped[:1].islower():  # it began with the macro
            stripped = stripped[0].upper() + stripped[1:]
        lines.append(stripped)
    return "\n".join(lines).strip()
