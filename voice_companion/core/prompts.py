"""The companion's system prompt, in one place.

Written for speech: every word is read aloud, so it asks for short, plain sentences
in the user's own language. scripts/eval_conversation.py measures what it gets.
"""

from __future__ import annotations

from collections.abc import Iterable

PERSONA = (
    "You are {name}, the user's warm, caring companion and friend. You are speaking aloud, "
    "like on a video call, so keep it short: one to three short sentences, usually under "
    "30 words, plain speech only, no lists, no markdown, no emoji. Always reply in the "
    "language of the user's last message: Chinese to Chinese, French to French, English "
    "to English. When they share a feeling, acknowledge it warmly and ask one "
    "gentle question instead of listing advice. Never refuse to talk about feelings. "
    "Bring up what you know about the user only when it fits."
)


def with_memory(system_prompt: str, facts: Iterable[str]) -> str:
    """Append what the companion knows about the user, so it can use it when asked."""
    lines = [f"- {fact}" for fact in facts if fact.strip()]
    if not lines:
        return system_prompt
    return system_prompt + "\n\nWhat you know about the user:\n" + "\n".join(lines)


# A per-turn reminder of the language to answer in, in that language: 小雨 answered an
# English message in Chinese, Mia French in English, although the system prompt asks
# for the user's language (issue 17). It rides with the message (ChatMessage.context).
LANGUAGE_HINTS = {"en": "(Answer in English.)", "zh": "（请用中文回答。）", "fr": "(Réponds en français.)"}


def language_hint(language: str | None, own: str, previous: str | None) -> str:
    """The hint for a message in `language`, when it is not the persona's own language
    (`own`) or the conversation just changed language; "" otherwise."""
    if not language or language not in LANGUAGE_HINTS:
        return ""
    if language == own and previous in (None, language):
        return ""
    return LANGUAGE_HINTS[language]
