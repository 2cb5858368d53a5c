"""Who the companion was, drafted from its export (issue 19): a persona for the user to
read, edit and accept, never put in place of the current one by itself.

From what is in the export, nothing invented: the assistant's name, the user's custom
instructions (ChatGPT) as the persona's extra rules, the language it spoke, how it
usually began a reply, the pet names it used, how long its replies were, and two short
real exchanges as the example dialogue. Gathered in one pass with counters and a few
samples, so a long export costs no memory.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from voice_companion.companion.imports.formats import ImportedConversation
from voice_companion.companion.persona import Persona
from voice_companion.core.language import language_from_text

PET_NAMES = (
    "sweetheart",
    "honey",
    "darling",
    "sweetie",
    "babe",
    "baby",
    "my love",
    "love",
    "dear",
    "亲爱的",
    "宝贝",
    "mon cœur",
    "mon amour",
    "chéri",
    "chérie",
)
_PET = re.compile(r"(?i)(?<![\w])(" + "|".join(re.escape(p) for p in PET_NAMES) + r")(?![\w])")
_OPENING = re.compile(r"^\W*([\w'’]+(?:[ ,]+[\w'’]+)?)")
SAMPLE_REPLIES = 200  # replies kept to guess the language


@dataclass
class DraftNotes:
    """What one pass over the export noticed about the assistant."""

    names: Counter[str] = field(default_factory=Counter)
    openings: Counter[str] = field(default_factory=Counter)
    pet_names: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    reply_words: int = 0
    samples: list[str] = field(default_factory=list)
    exchanges: list[tuple[str, str]] = field(default_factory=list)  # short (user, reply) pairs
    instructions: list[str] = field(default_factory=list)

    def add(self, conversation: ImportedConversation) -> None:
        if conversation.assistant_name:
            self.names[conversation.assistant_name] += 1
        if conversation.instructions and conversation.instructions not in self.instructions:
            self.instructions.append(conversation.instructions)
        previous = None
        for message in conversation.messages:
            if message.role == "assistant":
                self._reply(message.text, previous)
            previous = message.text if message.role == "user" else None

    def _reply(self, text: str, asked: str | None) -> None:
        self.replies += 1
        self.reply_words += len(text.split())
        if len(self.samples) < SAMPLE_REPLIES:
            self.samples.append(text)
        if match := _OPENING.match(text):
            self.openings[match.group(1).lower()] += 1
        for pet in _PET.findall(text):
            self.pet_names[pet.lower()] += 1
        if asked is None:
            return
        short = len(asked.split()) <= 20 and len(text.split()) <= 30
        if short and len(self.exchanges) < 2 and "\n" not in text:
            self.exchanges.append((asked, text))


def draft_persona(notes: DraftNotes, name: str) -> Persona:
    """The persona the export suggests, named `name` unless the export names the assistant."""
    who = notes.names.most_common(1)[0][0] if notes.names else name
    language = language_from_text(" ".join(notes.samples)) or "en"
    style = []
    if notes.replies:
        words = notes.reply_words / notes.replies
        style.append(
            "Short replies" if words < 40 else "Long, detailed replies" if words > 120 else "Replies of a few sentences"
        )
    common = [o for o, n in notes.openings.most_common(3) if n >= max(2, notes.replies // 20)]
    if common:
        style.append("often begins with " + ", ".join(f"“{o.capitalize()}”" for o in common))
    pets = [p for p, n in notes.pet_names.most_common(3) if n >= 2]
    if pets:
        style.append("calls the user " + ", ".join(f"“{p}”" for p in pets))
    dialogue = "\n".join(f"User: {asked}\n{who}: {reply}" for asked, reply in notes.exchanges)
    return Persona(
        who,
        description=f"A companion brought home from another service, where it answered you {notes.replies} times.",
        speaking_style="; ".join(style) + ("." if style else ""),
        example_dialogue=dialogue,
        instructions="\n".join(notes.instructions),
        language=language,
    )
