"""One message of the conversation, as the history holds it and the LLM reads it.

State is a field, not marker text (LiveKit's `ChatMessage(id, role, content,
interrupted)`): a reply the user cut off keeps the words they heard in `content`
and `interrupted=True`; what rode with a user's message when it was sent (the memories
recalled for it) is `context`, not part of their words. The prompt renders both in one
place, `prompt_text`, and the history keeps them as sent: the next prompt then starts
with the very tokens the LLM has cached.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

# How the LLM is told a reply was cut off: it then neither repeats it nor pretends
# it was finished.
INTERRUPTED_MARK = " [interrupted by the user]"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str
    interrupted: bool = False  # an assistant reply the user cut off: `content` is what was heard
    id: str = field(default_factory=new_message_id, compare=False)  # identity, not content
    context: str = ""  # a user message: what was sent before its words (recalled memories)

    @property
    def prompt_text(self) -> str:
        """The content as the LLM reads it."""
        text = f"{self.context}\n{self.content}" if self.context else self.content
        return text + (INTERRUPTED_MARK if self.interrupted else "")

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.prompt_text}
