"""The running conversation: persona prompt plus an append-only history.

The system prompt and earlier turns never change once sent, so the LLM's prompt
prefix stays identical turn after turn and its KV cache is reused. The one edit
is `amend`: after a barge-in the reply keeps only the words the user heard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from voice_companion.core.messages import ChatMessage
from voice_companion.core.prompts import language_hint
from voice_companion.engines.llm import LLMBackend


@dataclass
class Conversation:
    system_prompt: str
    max_turns: int = 12  # user+assistant pairs kept verbatim in the prompt
    history: list[ChatMessage] = field(default_factory=list)
    greeting: str = ""  # what the companion says when a call opens ("" = nothing)
    # the persona quotes its dialogue: prose outside quotes is narration, never spoken
    quoted_dialogue: bool = False
    language: str = ""  # the persona's own language ("" = none)
    # the messages prompt_for built, and their language, by the user's words
    _sent: dict[str, tuple[ChatMessage, str | None]] = field(default_factory=dict, repr=False)
    _last_language: str | None = field(default=None, repr=False)  # of the last recorded message

    def prompt_for(self, user_text: str, language: str | None = None) -> list[ChatMessage]:
        """The messages to send for a new user turn (the turn is not yet recorded);
        `language`: what the user spoke, if known (the reply is asked to follow it)."""
        recent = self.history[-2 * self.max_turns :]
        return [ChatMessage("system", self.system_prompt), *recent, self._user_message(user_text, language)]

    def _user_message(self, user_text: str, language: str | None, note: str = "") -> ChatMessage:
        """The user's message as sent: its words, after what rides with them (`note`:
        recalled memories; the language to answer in). Kept for `record`, so the history
        holds what the LLM read."""
        hint = language_hint(language, self.language, self._last_language)
        context = "\n".join(part for part in (note, hint) if part)
        message = ChatMessage("user", user_text, context=context)
        self._sent[user_text] = (message, language)
        return message

    def _sent_message(self, user_text: str) -> ChatMessage:
        """The message prompt_for built for `user_text` (plain if none); forgets the rest."""
        sent, language = self._sent.get(user_text) or (ChatMessage("user", user_text), None)
        self._sent.clear()
        self._last_language = language or self._last_language
        return sent

    def prefix(self) -> list[ChatMessage]:
        """What stays the same for the next turn: worth prefilling when idle."""
        return [ChatMessage("system", self.system_prompt), *self.history[-2 * self.max_turns :]]

    def record(self, user_text: str, reply: str, interrupted: bool = False, reply_id: str = "") -> ChatMessage:
        """Add one exchange. `reply_id` (the response's id) becomes the reply message's id,
        by which a transport amends it later; returns that message."""
        assistant = ChatMessage("assistant", reply, interrupted, **({"id": reply_id} if reply_id else {}))
        self.history += [self._sent_message(user_text), assistant]
        return assistant

    def amend(self, message_id: str, content: str, interrupted: bool) -> bool:
        """Replace what a message says (a reply cut off: what was heard); False if it is
        no longer in the history."""
        for index in range(len(self.history) - 1, -1, -1):
            if self.history[index].id == message_id:
                self.history[index] = replace(self.history[index], content=content, interrupted=interrupted)
                self._amended(index)
                return True
        return False

    def _amended(self, index: int) -> None:
        """`history[index]` was amended (a conversation with a memory saves it)."""

    async def warm_up(self, llm: LLMBackend) -> str:
        """Put the prefix in the LLM's cache before the first turn (a memory restores it)."""
        await llm.prefill(self.prefix())
        return "prefilled"

    def next_prefix(self) -> list[ChatMessage]:
        """What the next turn starts with: worth prefilling while the companion is idle."""
        return self.prefix()

    def mark_prepared(self, prefix: list[ChatMessage]) -> None:
        """`prefix` (from next_prefix) is now in the LLM's cache in full."""

    async def save_for_next(self, llm: LLMBackend, roll: bool = True) -> bool:
        """Keep the LLM state for the next session (only a conversation with a memory can)."""
        return False

    def listen_for_outages(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `listener(code, message)` when turns cannot be saved (a memory whose store
        is down); returns the function that stops listening. Nothing is saved here."""
        return lambda: None

    def close(self) -> None:
        """End the session (a conversation with a memory finishes its learning)."""
