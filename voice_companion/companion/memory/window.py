"""Where the companion's prompt window begins, kept in the store across sessions.

Why: on 2 cores the `small` brain prefills ~56 tokens/s, so every token of the prompt
that changes costs the user ~18 ms of waiting. A window that is rebuilt at each new
session (new profile, new summaries, a different slice of recent turns) made a
returning user wait 20-100 s. So the window is append-only *across* sessions too: the
next session continues the same prompt — the same system message, the same turns,
this session's turns after them — and its saved LLM state (engines/llm_state.py)
covers nearly all of it. Only a roll (the window filled) builds a new system message,
with the facts and summaries learned since, and that is prepared in the background.

A window is its first turn shown verbatim and its system message, frozen as built
(persona, profile, earlier sessions, summaries of rolled-out turns): the same bytes
give the same tokens, so the saved state stays valid. Facts learned later reach the
system message at the next roll; until then the turn they came from is itself in the
window. What was recalled for each user message of the window rides with it (`notes`),
so the prompt a session saves is the one the next session rebuilds. Editing or
forgetting a memory resets the window (`reset`), so what the user
took back leaves the prompt at once; a changed persona starts a new one too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field

from voice_companion.companion.memory.types import MemoryStore

log = logging.getLogger(__name__)
META_KEY = "window"


@dataclass(frozen=True)
class Window:
    first_turn: int  # the oldest turn in the prompt verbatim (older ones are summarised)
    system: str  # the system message, as built
    # summaries of rolled-out turns of sessions that have no summary of their own yet
    rolled: tuple[tuple[int, str], ...] = field(default_factory=tuple)  # (session id, text)
    persona: str = ""  # digest of the persona prompt it was built on
    # what was sent before the words of the window's user turns (recalled memories)
    notes: tuple[tuple[int, str], ...] = field(default_factory=tuple)  # (turn id, text)

    def with_notes(self, notes: dict[int, str]) -> Window:
        """This window with the notes of its own turns (older ones left out)."""
        kept = tuple((i, n) for i, n in sorted(notes.items()) if i >= self.first_turn and n)
        return self if kept == self.notes else dataclasses.replace(self, notes=kept)


def load(store: MemoryStore) -> Window | None:
    raw = store.get_meta(META_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Window(
            int(data["first_turn"]),
            str(data["system"]),
            tuple((int(s), str(t)) for s, t in data.get("rolled", ())),
            str(data.get("persona", "")),
            tuple((int(i), str(n)) for i, n in data.get("notes", ())),
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("the saved prompt window is unreadable (%s); starting a new one", exc)
        return None


def save(store: MemoryStore, window: Window) -> None:
    """Best effort: the window is derived data; losing it costs one cold prefill."""
    try:
        store.set_meta(META_KEY, json.dumps(asdict(window)))
    except Exception as exc:  # noqa: BLE001 - e.g. a full disk: the conversation goes on
        log.warning("could not save the prompt window: %s", exc)


def reset(store: MemoryStore) -> None:
    """The next session builds a new window (after the user edited or forgot a memory)."""
    store.set_meta(META_KEY, None)
