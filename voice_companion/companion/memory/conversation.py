"""A `Conversation` that remembers, for the live session, chat and the phone server alike.

Same interface as `Conversation` (prompt_for, prefix, record, amend, history,
system_prompt), so session.py needs no change. Underneath: every turn is
written to the memory store when it is recorded, facts are learned in the background,
and the prompt window continues across sessions (window.py) so the LLM's saved state
(engines/llm_state.py) makes a returning user's first turn as fast as any other.
When the window fills, its oldest turns roll into a summary; the rolled window is
prepared (and prefilled, by the live session while idle) before it is needed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from pathlib import Path

from voice_companion.companion.memory import context, greetings
from voice_companion.companion.memory import window as windows
from voice_companion.companion.memory.retrieval import Recalled, Retriever
from voice_companion.companion.memory.spooling_store import SpoolingStore
from voice_companion.companion.memory.summaries import summarize_turns
from voice_companion.companion.memory.types import MemoryStore, Turn
from voice_companion.companion.memory.window import Window
from voice_companion.companion.memory.worker import MemoryWorker
from voice_companion.conversation.history import Conversation
from voice_companion.conversation.reply_length import shaped
from voice_companion.core.errors import CompanionError
from voice_companion.core.messages import ChatMessage
from voice_companion.core.text import asks_or_recalls
from voice_companion.engines.llm import LLMBackend

log = logging.getLogger(__name__)
BUSY_FOR_S = 30.0  # a reply asked for and not recorded within this is considered abandoned
# Share of the turn budget at which the next window is prepared: all turns present then
# roll out at the swap (at 100 %), so the swapped-in window starts half full.
PREPARE_ROLL_AT = 0.5
# A session that ends with its window this full rolls it then, off the next one's path.
ROLL_AT_SESSION_END = 0.85
# A full window waits for its successor to be prefilled up to this much over budget
# (the LLM's context has room for it: engines.CONTEXT_HEADROOM). scripts/bench_returning.py
# on `small`: swapping in a half-prefilled window put 15-21 s on the next turn.
ROLL_GRACE = 1.25
OWNER = f"{socket.gethostname()}:{os.getpid()}"  # who holds a session open (orphans: memory_worker)
LOADED_TURNS = 400  # the most turns a window can start with (a 4k window holds far fewer)
RECALLED_NEAR = 4  # messages: a memory recalled this close to the new one is not repeated


DRAFT_TAIL = 6  # characters at the end of the words so far that the final words may change
DRAFT_MIN_SHARE = 0.5  # of the final words that the words so far must already have


def _drafts(draft: str, final: str) -> bool:
    """`draft` is an earlier reading of the same words as `final` (they begin alike)."""
    d, f = _letters(draft), _letters(final)
    stem = d[: len(d) - DRAFT_TAIL]
    return len(stem) >= DRAFT_TAIL and len(d) >= DRAFT_MIN_SHARE * len(f) and f.startswith(stem)


def _letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


class MemoryConversation(Conversation):
    def __init__(
        self,
        store: MemoryStore,
        persona_prompt: str,
        budget: context.Budget,
        llm: LLMBackend | None = None,
        extraction: str = "off",
        recall_k: int = 6,
        retriever: Retriever | None = None,
        backend: str = "",
        state_dir: Path | None = None,
        keep: bool = True,
    ) -> None:
        """`state_dir`: where the LLM state of the next session's prefix is saved (None:
        warm start off). `keep=False`: nothing is written (the demo is not a memory)."""
        super().__init__(persona_prompt)
        self.store, self.budget, self.recall_k = store, budget, recall_k
        self.retriever = retriever or Retriever(store)
        self.state_dir, self.keep = state_dir, keep
        self.session_id = store.start_session(backend, OWNER) if keep else 0
        self._ids: list[int] = []  # the store's turn id of each message in `history`
        self._session_of: list[int] = []  # and the session it belongs to
        self.rolls = 0  # times the window filled and its oldest turns became a summary
        self._asked_at: float | None = None
        self._draft: tuple[str, list[Recalled]] | None = None  # this turn's words so far, their recall
        self._closed = False
        self.greeting = ""  # what the companion says first (Companion.conversation sets it)
        self.window: Window  # the prompt window now (set by _open_window)
        self.upcoming: Window | None = None  # the next window, prepared before this one fills
        self.upcoming_ready = False  # its prefix was prefilled in full (Session._prepare_next)
        self._open_window()
        self.worker = MemoryWorker(
            store, llm if keep else None, extraction, busy=self.busy, vectors=self.retriever.vectors if keep else None
        )

    # -- the Conversation interface ------------------------------------------------

    def prompt_for(self, user_text: str, language: str | None = None) -> list[ChatMessage]:
        self._asked_at = time.monotonic()
        recalled = self._recall_for(user_text)
        # what the last two messages had recalled is near enough to the question: not again
        already = "\n".join(m.context for m in self.history[-RECALLED_NEAR:] if m.context)
        limit = self.budget.asked_recall_tokens if asks_or_recalls(user_text) else self.budget.recall_tokens
        note = context.recall_note(recalled, limit, already)
        return [*self.prefix(), self._user_message(user_text, language, note)]

    def prefix(self) -> list[ChatMessage]:
        return [ChatMessage("system", self.window.system), *self.history]

    def record(self, user_text: str, reply: str, interrupted: bool = False, reply_id: str = "") -> ChatMessage:
        """Persist the exchange now (durable on return), then learn from it in the background."""
        if self.keep:
            user = self.store.add_turn(self.session_id, "user", user_text)
            assistant = self.store.add_turn(self.session_id, "assistant", reply, interrupted)
            ids = [user.id, assistant.id]
        else:
            ids = [0, 0]
        message = ChatMessage("assistant", reply, interrupted, **({"id": reply_id} if reply_id else {}))
        # the user's message as it was sent (its recall included): the next prompt then
        # begins with what the LLM has cached (without it, scripts/bench_returning.py's
        # tiny chat re-read ~220 tokens a line: that message, its recall and the reply)
        sent = self._sent_message(user_text)
        self.history += [sent, message]
        self._ids += ids
        self._session_of += [self.session_id] * 2
        self._asked_at = None
        self._draft = None
        if sent.context and self.keep:
            self.window = self._with_notes(self.window)
            windows.save(self.store, self.window)
        if self.keep:
            self.worker.after_turn(ids[0], user_text)
        self._roll_if_full()
        return message

    # -- warm start ------------------------------------------------------------------

    async def warm_up(self, llm: LLMBackend) -> str:
        """Make the prefix ready before the user's first words: restore its saved state
        (milliseconds), else prefill it cold. Returns "restored" or "prefilled"."""
        prefix = self.prefix()
        start = time.perf_counter()
        how = "prefilled"
        if self.state_dir is not None and llm.supports_saved_state:
            try:
                if await llm.restore_state(prefix, self.state_dir):
                    how = "restored"
                    # The coming window begins as this one does (persona, profile): seeded
                    # with it, its background prefill reads ~500 tokens, not ~1,400
                    # (scripts/bench_returning.py, small, 40-turn call: the call's first
                    # roll was never ready in time from an empty slot: a 6-12 s turn).
                    await llm.restore_state(prefix, self.state_dir, ahead=True)
            except (CompanionError, OSError) as exc:
                log.warning("could not restore the saved LLM state: %s", exc)
        if how == "prefilled":
            await llm.prefill(prefix)
        log.info(
            "the prompt (%d turns) is ready: %s in %.0f ms",
            len(self.history),
            how,
            (time.perf_counter() - start) * 1000,
        )
        return how

    def next_prefix(self) -> list[ChatMessage]:
        """What the next turn (or the next window, once this one nears full) starts with:
        worth prefilling while the companion is idle."""
        target = self.upcoming or self.window
        return [
            ChatMessage("system", target.system),
            *(m for m, i in zip(self.history, self._ids, strict=True) if i >= target.first_turn),
        ]

    async def save_for_next(self, llm: LLMBackend, roll: bool = True) -> bool:
        """Write the LLM state of the next session's prefix (warm start for the next call).

        The next session continues this window, so the prefix is this session's with its
        turns: mostly in the KV cache already. A window that is nearly full rolls now,
        so the next session does not start with a roll on its critical path; `roll=False`
        when there is no time to prefill the new window (a server stopping: the rolled
        window, saved but never prefilled, made the next call wait ~15 s in
        scripts/bench_returning.py's phone calls), and the window rolls in a later call."""
        saved = False
        if self.keep and self.state_dir is not None and llm.supports_saved_state:
            saved = await self._save_state(llm)  # the window as it is: in the cache, quick
            if roll and self._fill() > ROLL_AT_SESSION_END:
                saved = await self._roll_and_save(llm) or saved
        await self.write_next_greeting(llm)
        return saved

    async def _save_state(self, llm: LLMBackend) -> bool:
        assert self.state_dir is not None
        try:
            return await llm.save_state(self.prefix(), self.state_dir)
        except (CompanionError, OSError) as exc:
            log.warning("could not save the LLM state for next time: %s", exc)
            return False

    async def _roll_and_save(self, llm: LLMBackend) -> bool:
        """Roll the window and save the new one's state; the roll is kept only once its
        state is saved. Cut short (the process exits) or refused, the window stays as it
        was, with the state just saved for it: a rolled window saved without its state
        made the next phone call wait ~15 s (scripts/bench_returning.py)."""
        before = (self.window, list(self.history), list(self._ids), list(self._session_of), self.rolls)
        done = False
        try:
            self._swap(self.upcoming if self.upcoming_ready and self.upcoming else self._next_window(), persist=False)
            done = await self._save_state(llm)
        finally:
            if done:
                windows.save(self.store, self.window)
            else:
                self.window, self.history, self._ids, self._session_of, self.rolls = before
        return done

    async def write_next_greeting(self, llm: LLMBackend) -> str:
        """What the companion will say when the user calls next time, written now by the
        LLM from this session (its prefix is in the cache): "How did the dinner with Lea
        go?", not a quote of the user's last line. Kept in the store; "" if none fits."""
        if not self.keep or self.session_id not in self._session_of:  # nothing said this session
            return ""
        language = self._last_language or self.language or "en"
        ask = ChatMessage("user", greetings.REQUEST.get(language, greetings.REQUEST["en"]))
        try:
            async with aclosing(llm.stream([*self.prefix(), ask], greetings.OPTIONS)) as deltas:
                text = "".join([d async for d in shaped(deltas, greetings.OPTIONS.wrap_up_words)])
        except CompanionError as exc:
            log.info("no greeting written for next time: %s", exc)
            return ""
        greeting = greetings.clean(text, language, [m.content for m in self.history if m.role == "user"])
        greetings.save(self.store, self.session_id, greeting)
        return greeting

    # -- memory --------------------------------------------------------------------

    def system_message(self) -> str:
        return self.window.system

    def busy(self) -> bool:
        """A reply is being generated: background work must leave the LLM alone."""
        return self._asked_at is not None and time.monotonic() - self._asked_at < BUSY_FOR_S

    def close(self) -> None:
        """End the session: pending learning and its summary (bounded time). Idempotent."""
        if not self._closed:
            self._closed = True
            if self.keep:
                self.worker.finish(self.session_id)

    def _recall_for(self, text: str) -> list[Recalled]:
        """The recall for a turn's message. A statement whose words so far were already
        asked for (the live session's listen-ahead) keeps what they recalled: the message
        then begins as the LLM has it cached, so only its last words are read at the end of
        the turn (scripts/bench_returning.py, small, 40-turn call: statements whose recall
        changed with their last words read 29-45 new tokens, 1.4-2.6 s to the first token,
        against 7-11 tokens, ~0.5 s). A question (or a look back) is searched on its whole
        words: its answer may be in them."""
        draft = self._draft
        if draft is not None and not asks_or_recalls(text) and _drafts(draft[0], text):
            self._draft = (text, draft[1])  # the next reading is compared with this one
            return draft[1]
        recalled = self._recall(text)
        self._draft = (text, recalled)
        return recalled

    def _recall(self, text: str) -> list[Recalled]:
        """What search finds for this message: memories, and old turns when the user asks.

        A fact learned this session needs no place here: the turn it came from is still
        in the window, and when that turn rolls out, the refreshed profile takes the fact.
        A profile fact that matches is repeated on purpose: next to the question, small
        models use it; buried in the system prompt, they often do not. Old turns are
        searched only when the user asks or looks back: every recalled token costs
        prefill time on the live path (Budget.recall_tokens caps it per tier)."""
        asks = asks_or_recalls(text)
        found = self.retriever.recall(text, self.recall_k, before_turn=self._searched_before(asks), turns=asks)
        return list({r.text: r for r in reversed(found)}.values())[::-1]

    def _searched_before(self, asks: bool) -> int | None:
        """The first turn that search leaves out: the window's, as the prompt has them; for
        a question, only the last exchange's. A 1.5B model answers from a turn quoted next
        to the question far more often than from the same turn four messages up
        (scripts/eval_conversation.py, small: "Thursday at nine" came back 4 of 5 times)."""
        if asks:
            return self._ids[-2] if len(self._ids) >= 2 else None
        return self._ids[0] if self._ids else None

    # -- the window ----------------------------------------------------------------

    def _open_window(self) -> None:
        """Continue the saved window, or start one with the latest turns (half the budget).
        A saved window already over budget (its last session could not roll it) rolls now."""
        saved = windows.load(self.store)
        if saved is not None and saved.persona == _digest(self.system_prompt):
            self.window = saved
            self._load_turns(saved.first_turn, dict(saved.notes))
            if self._fill() > 1.0:
                log.info("the prompt window is over its budget; rolling it before the first turn")
                self._swap(self._next_window())
                self.rolls = 0
            return
        system = self._system_text([])
        limit = self.budget.for_turns(context.estimate_tokens(system)) // 2
        latest = self.store.turns(limit=40)
        texts = context.fit_latest([_message(t).prompt_text for t in latest], limit)
        first = latest[len(latest) - len(texts)].id if texts else self._next_turn_id()
        self._load_turns(first)
        self.window = Window(first, system, (), _digest(self.system_prompt))
        if self.keep:
            windows.save(self.store, self.window)

    def _load_turns(self, first_turn: int, notes: dict[int, str] | None = None) -> None:
        turns = [t for t in self.store.turns(limit=LOADED_TURNS) if t.id >= first_turn]
        while turns and turns[0].role != "user":
            turns.pop(0)
        for turn in turns:
            self.history.append(_message(turn, (notes or {}).get(turn.id, "")))
            self._ids.append(turn.id)
            self._session_of.append(turn.session_id)

    def _system_text(self, rolled: Sequence[str]) -> str:
        """Persona, the profile (every fact known now), earlier sessions, rolled-out turns."""
        facts = self.store.memories(("fact", "note"))
        profile_limit, per_episode, per_roll = self._memory_parts()
        profile = [m.text for m in context.pick_profile(facts, profile_limit)]
        episodes = [s.summary for s in reversed(self.store.sessions(6)) if s.summary]
        return context.system_text(
            self.system_prompt,
            profile,
            context.fit_latest(context.shorten_all(episodes, max(16, per_episode // 2)), per_episode),
            context.fit_latest(context.shorten_all(list(rolled), max(16, per_roll // 2)), per_roll),
        )

    def _memory_parts(self) -> tuple[int, int, int]:
        return self.budget.memory_parts(context.estimate_tokens(self.system_prompt))

    def _fill(self) -> float:
        return self._fill_of(self.window)

    def _fill_of(self, window: Window) -> float:
        limit = self.budget.for_turns(context.estimate_tokens(window.system))
        return sum(context.message_tokens(m.prompt_text) for m in self.history) / max(1, limit)

    def _next_window(self) -> Window:
        """The window after a roll: the oldest turns (about half the budget) become summaries,
        the profile takes every fact known now."""
        limit = self.budget.for_turns(context.estimate_tokens(self.window.system))
        count = context.drop_count([m.prompt_text for m in self.history], limit // 2)
        summarised = {s.id for s in self.store.sessions(50) if s.summary}
        rolled = [(sid, text) for sid, text in self.window.rolled if sid not in summarised]
        gone = [
            Turn(i, sid, m.role, m.content, time.time())
            for i, sid, m in zip(self._ids[:count], self._session_of[:count], self.history[:count], strict=True)
        ]
        for sid in dict.fromkeys(t.session_id for t in gone):
            if sid not in summarised:
                per_roll = self._memory_parts()[2]
                summary = summarize_turns([t for t in gone if t.session_id == sid], max(24, per_roll // 2))
                if summary:
                    rolled.append((sid, summary))
        first = self._ids[count] if count < len(self._ids) else self._next_turn_id()
        return Window(first, self._system_text([t for _, t in rolled]), tuple(rolled), _digest(self.system_prompt))

    def mark_prepared(self, prefix: Sequence[ChatMessage]) -> None:
        """The session prefilled `prefix` in full: if it is the coming window's, that window
        can be swapped in without a turn paying for it."""
        if self.upcoming is not None and prefix and prefix[0].content == self.upcoming.system:
            self.upcoming_ready = True

    def _roll_if_full(self) -> None:
        fill = self._fill()
        if fill > 1.0:
            if self.upcoming is None or self.upcoming_ready or fill > ROLL_GRACE:
                self._swap(self.upcoming or self._next_window())
        elif fill > PREPARE_ROLL_AT and self.upcoming is None and self.state_dir is not None:
            # prefilled by the session while idle (warm start off: rolls are built when due)
            self.upcoming = self._next_window()
            self.upcoming_ready = False

    def _swap(self, window: Window, persist: bool = True) -> None:
        keep_from = next((n for n, i in enumerate(self._ids) if i >= window.first_turn), len(self._ids))
        del self.history[:keep_from]
        del self._ids[:keep_from]
        del self._session_of[:keep_from]
        log.info(
            "the prompt window rolled: %d turns kept, %s",
            len(self.history),
            "prepared in the background"
            if window is self.upcoming and self.upcoming_ready
            else "built ahead, not yet prefilled"
            if window is self.upcoming
            else "built now",
        )
        self.window, self.upcoming, self.upcoming_ready = self._with_notes(window), None, False
        self.rolls += 1
        if self.keep and persist:
            windows.save(self.store, self.window)

    def _with_notes(self, window: Window) -> Window:
        """`window` with what its turns in the history had recalled (kept across sessions)."""
        return window.with_notes({i: m.context for i, m in zip(self._ids, self.history, strict=True) if m.context})

    def _next_turn_id(self) -> int:
        latest = self.store.turns(limit=1)
        return latest[-1].id + 1 if latest else 0

    def listen_for_outages(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        if isinstance(self.store, SpoolingStore):
            return self.store.listen(listener)
        return lambda: None

    def _amended(self, index: int) -> None:
        message = self.history[index]
        if self.keep and self._ids[index]:
            self.store.update_turn(self._ids[index], message.content, message.interrupted)
        self._asked_at = None


def _message(turn: Turn, note: str = "") -> ChatMessage:
    return ChatMessage(turn.role, turn.text, turn.interrupted, context=note)


def _digest(persona_prompt: str) -> str:
    return hashlib.sha256(persona_prompt.encode("utf-8")).hexdigest()[:16]
