"""A `Conversation` that remembers, for the live session, chat and the phone server alike.

Same interface as `Conversation` (prompt_for, prefix, record, replace_or_record,
history, system_prompt), so session.py needs no change. Underneath: every turn is
written to the memory store when it is recorded, facts are learned in the background,
the window rolls older turns into summaries when it fills, and the prompt is laid out
by context.py so its prefix stays cacheable.
"""

from __future__ import annotations

import time
from typing import Callable

from voice_companion.companion import context
from voice_companion.companion.conversation import Conversation
from voice_companion.companion.memory_types import MemoryStore, Turn
from voice_companion.companion.memory_worker import MemoryWorker
from voice_companion.companion.retrieval import Retriever
from voice_companion.companion.summaries import summarize_turns
from voice_companion.companion.text_utils import asks_or_recalls
from voice_companion.pipeline.llm import ChatMessage, LLMBackend

INTERRUPTED_MARK = " [interrupted by the user]"  # as pipeline/session.py marks a cut-off reply
BUSY_FOR_S = 30.0  # a reply asked for and not recorded within this is considered abandoned


class _History(list):
    """The window's messages; an assignment (the server's truncation) is saved too."""

    def __init__(self, on_set: Callable[[int, ChatMessage], None]) -> None:
        super().__init__()
        self._on_set = on_set

    def __setitem__(self, index, value) -> None:
        super().__setitem__(index, value)
        if isinstance(index, int):
            self._on_set(index if index >= 0 else len(self) + index, value)


class MemoryConversation(Conversation):
    def __init__(self, store: MemoryStore, persona_prompt: str, budget: context.Budget,
                 llm: LLMBackend | None = None, extraction: str = "off", recall_k: int = 6,
                 retriever: Retriever | None = None, backend: str = "") -> None:
        super().__init__(persona_prompt)
        self.history = _History(self._amended)
        self.store, self.budget, self.recall_k = store, budget, recall_k
        self.retriever = retriever or Retriever(store)
        self.session_id = store.start_session(backend)
        self._ids: list[int] = []  # the store's turn id of each message in `history`
        self._episodes = [s.summary for s in reversed(store.sessions(6)) if s.summary]
        self._rolled: list[str] = []
        self.rolls = 0  # times the window filled and its oldest turns became a summary
        self._asked_at: float | None = None
        self._closed = False
        self.greeting = ""  # what the companion says first (Companion.conversation sets it)
        self._refresh_profile()
        self._carry_over()
        self.worker = MemoryWorker(store, llm, extraction, busy=self.busy)

    # -- the Conversation interface ------------------------------------------------

    def prompt_for(self, user_text: str) -> list[ChatMessage]:
        self._asked_at = time.monotonic()
        recalled = self._recall(user_text)
        message = context.user_message(user_text, recalled, self.budget.part(self.budget.recall))
        return [*self.prefix(), ChatMessage("user", message)]

    def prefix(self) -> list[ChatMessage]:
        return [ChatMessage("system", self.system_message()), *self.history]

    def record(self, user_text: str, reply: str) -> None:
        """Persist the exchange now (durable on return), then learn from it in the background."""
        user = self.store.add_turn(self.session_id, "user", user_text)
        clean = reply.removesuffix(INTERRUPTED_MARK)
        assistant = self.store.add_turn(self.session_id, "assistant", clean, clean != reply)
        list.extend(self.history, [ChatMessage("user", user_text), ChatMessage("assistant", reply)])
        self._ids += [user.id, assistant.id]
        self._asked_at = None
        self.worker.after_turn(user.id, user_text)
        self._roll_if_full()

    def replace_or_record(self, user_text: str, reply: str) -> None:
        last = self.history[-2:]
        if len(last) == 2 and last[0] == ChatMessage("user", user_text) and last[1].role == "assistant":
            self.history[-1] = ChatMessage("assistant", reply)  # saved by _amended
            self._asked_at = None
        else:
            self.record(user_text, reply)

    # -- memory --------------------------------------------------------------------

    def system_message(self) -> str:
        b = self.budget
        episodes, rolled = b.part(b.episodes), b.part(b.rolled)
        return context.system_text(
            self.system_prompt, self._profile,
            context.fit_latest(context.shorten_all(self._episodes, max(16, episodes // 2)), episodes),
            context.fit_latest(context.shorten_all(self._rolled, max(16, rolled // 2)), rolled))

    def busy(self) -> bool:
        """A reply is being generated: background work must leave the LLM alone."""
        return self._asked_at is not None and time.monotonic() - self._asked_at < BUSY_FOR_S

    def close(self) -> None:
        """End the session: pending learning and its summary (bounded time). Idempotent."""
        if not self._closed:
            self._closed = True
            self.worker.finish(self.session_id)

    def _recall(self, text: str) -> list[str]:
        """What search finds for this message: memories, and old turns when the user asks.

        A fact learned this session needs no place here: the turn it came from is still
        in the window, and when that turn rolls out, the refreshed profile takes the fact.
        A profile fact that matches is repeated on purpose: next to the question, small
        models use it; buried in the system prompt, they often do not. Old turns are
        searched only when the user asks or looks back: every recalled token costs
        prefill time on the live path."""
        found = self.retriever.recall(text, self.recall_k, before_turn=self._ids[0] if self._ids else None,
                                      turns=asks_or_recalls(text))
        return list(dict.fromkeys(r.text for r in found))

    def _refresh_profile(self) -> None:
        facts = self.store.memories(("fact", "note"))
        chosen = context.pick_profile(facts, self.budget.part(self.budget.profile))
        self._profile = [m.text for m in chosen]

    def _carry_over(self) -> None:
        """Resume where the last session stopped: its latest turns, up to half the window."""
        limit = self.budget.for_turns(context.estimate_tokens(self.system_message())) // 2
        turns = self.store.turns(limit=40)
        while turns and turns[0].role != "user":
            turns.pop(0)
        texts = [t.text + (INTERRUPTED_MARK if t.interrupted else "") for t in turns]
        skip = context.roll_count(texts, limit * 2)  # what would roll anyway stays out
        for turn, text in list(zip(turns, texts))[skip:]:
            list.append(self.history, ChatMessage(turn.role, text))
            self._ids.append(turn.id)

    def _roll_if_full(self) -> None:
        limit = self.budget.for_turns(context.estimate_tokens(self.system_message()))
        count = context.roll_count([m.content for m in self.history], limit)
        if not count:
            return
        turns = [Turn(i, self.session_id, m.role, m.content, time.time())
                 for i, m in zip(self._ids[:count], self.history[:count])]
        summary = summarize_turns(turns, max(24, self.budget.part(self.budget.rolled) // 2))
        if summary:
            self._rolled.append(summary)
        del self.history[:count]
        del self._ids[:count]
        self.rolls += 1
        self._refresh_profile()  # the prefix changes now anyway: bring new facts in

    def _amended(self, index: int, message: ChatMessage) -> None:
        clean = message.content.removesuffix(INTERRUPTED_MARK)
        self.store.update_turn(self._ids[index], clean, clean != message.content)
