"""The companion's system prompt, in one place.

Written for speech: every word is read aloud, so it asks for short, plain sentences
in the user's own language. scripts/eval_conversation.py measures what it gets.
"""

from __future__ import annotations

from typing import Iterable

PERSONA = (
    "You are {name}, the user's warm, caring companion and friend. You are speaking aloud, "
    "like on a video call: answer in one to three short sentences, plain speech only, "
    "no lists, no markdown, no emoji. Always reply in the language of the user's last "
    "message: Chinese to Chinese, French to French, English to English. Be kind and "
    "natural, listen, and never refuse to talk about feelings."
)


def with_memory(system_prompt: str, facts: Iterable[str]) -> str:
    """Append what the companion knows about the user, so it can use it when asked."""
    lines = [f"- {fact}" for fact in facts if fact.strip()]
    if not lines:
        return system_prompt
    return system_prompt + "\n\nWhat you know about the user:\n" + "\n".join(lines)
