"""The running conversation: persona prompt plus an append-only history.

The system prompt and earlier turns never change once sent, so the LLM's prompt
prefix stays identical turn after turn and its KV cache is reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voice_companion.engines.llm import ChatMessage, LLMBackend


@dataclass
class Conversation:
    system_prompt: str
    max_turns: int = 12  # user+assistant pairs kept verbatim in the prompt
    history: list[ChatMessage] = field(default_factory=list)
    greeting: str = ""  # what the companion says when a call opens ("" = nothing)

    def prompt_for(self, user_text: str) -> list[ChatMessage]:
        """The messages to send for a new user turn (the turn is not yet recorded)."""
        recent = self.history[-2 * self.max_turns :]
        return [ChatMessage("system", self.system_prompt), *recent, ChatMessage("user", user_text)]

    def prefix(self) -> list[ChatMessage]:
        """What stays the same for the next turn: worth prefilling when idle."""
        return [ChatMessage("system", self.system_prompt), *self.history[-2 * self.max_turns :]]

    def record(self, user_text: str, reply: str) -> None:
        self.history.append(ChatMessage("user", user_text))
        self.history.append(ChatMessage("assistant", reply))

    def replace_or_record(self, user_text: str, reply: str) -> None:
        """Replace the reply to `user_text` if it is the last turn, else record a new turn."""
        last_two = self.history[-2:]
        if len(last_two) == 2 and last_two[0] == ChatMessage("user", user_text) and last_two[1].role == "assistant":
            self.history[-1] = ChatMessage("assistant", reply)
        else:
            self.record(user_text, reply)

    async def warm_up(self, llm: LLMBackend) -> str:
        """Put the prefix in the LLM's cache before the first turn (a memory restores it)."""
        await llm.prefill(self.prefix())
        return "prefilled"

    def next_prefix(self) -> list[ChatMessage]:
        """What the next turn starts with: worth prefilling while the companion is idle."""
        return self.prefix()

    def mark_prepared(self, prefix: list[ChatMessage]) -> None:
        """`prefix` (from next_prefix) is now in the LLM's cache in full."""

    async def save_for_next(self, llm: LLMBackend) -> bool:
        """Keep the LLM state for the next session (only a conversation with a memory can)."""
        return False

    def close(self) -> None:
        """End the session (a conversation with a memory finishes its learning)."""
