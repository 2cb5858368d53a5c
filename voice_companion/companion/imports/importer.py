"""An export into the companion's memory, as if it had lived it (issue 19).

Every imported message becomes a turn with its original time; a conversation becomes
sessions, a new one after a gap of `SESSION_GAP_S`; each session is marked with its source
("chatgpt", …) and each turn with its origin (the export's message id), so importing the
same file again adds nothing twice. Then `learn` gives each imported session its summary
and the facts the user stated in it (summaries.py and facts.py: instant, nothing
invented; the LLM's extraction is not run over years of history), dated when said.

Imported history is older than the live conversation, so its turns and sessions take ids
below every id here (below `IMPORTED_BELOW`, clear of the spool's provisional ids): the
order of ids stays the order of time for everything that reads the store by id — the
prompt window (its turns are the newest, so an import never enters a live window or
breaks its saved state), recall (which searches the turns before the window: imported
ones included), the last session and the greeting. Within one import the turns keep
their time order; a later import of older history goes below it.

Two passes over the file, both streamed: the first checks the whole file and counts
what is new (a malformed file imports nothing); the second writes one session per
transaction, so a kill keeps what was written and the same command resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from voice_companion.companion.imports.draft import DraftNotes
from voice_companion.companion.imports.formats import ImportedConversation, ImportedMessage, detect, read
from voice_companion.companion.memory import facts
from voice_companion.companion.memory.summaries import summarize_session
from voice_companion.companion.memory.types import ImportStore

SESSION_GAP_S = 3 * 3600  # a pause of hours in a chat is another day's conversation
Progress = Callable[[int, int], None]  # (turns written, turns to write)


@dataclass(frozen=True)
class ImportedSession:
    source: str  # the format
    turns: tuple[ImportedMessage, ...]
    conversation: str  # the conversation's key

    @property
    def started(self) -> float:
        return self.turns[0].time or 0.0


@dataclass
class ImportReport:
    conversations: int = 0
    sessions: int = 0
    turns: int = 0  # written now
    already: int = 0  # there from an earlier import of the same file
    skipped: int = 0  # conversations not chosen
    instructions: list[str] = field(default_factory=list)  # custom instructions seen (persona input)
    assistant_names: set[str] = field(default_factory=set)
    notes: DraftNotes = field(default_factory=DraftNotes)  # who the assistant was (draft.py)


def sessions_of(conversation: ImportedConversation, source: str) -> list[ImportedSession]:
    """The conversation cut where the user came back after `SESSION_GAP_S` or more; a
    message without a time takes the time of the one before it."""
    found: list[list[ImportedMessage]] = []
    last: float | None = None
    for message in conversation.messages:
        when = message.time if message.time is not None else (last if last is not None else conversation.created)
        message = ImportedMessage(message.role, message.text, when, message.key)
        if not found or (when is not None and last is not None and when - last >= SESSION_GAP_S):
            found.append([])
        found[-1].append(message)
        last = when if when is not None else last
    return [ImportedSession(source, tuple(turns), conversation.key) for turns in found]


def conversations(
    path: Path, fmt: str, chosen: Iterable[str] = (), user_name: str = ""
) -> Iterator[ImportedConversation]:
    """The export's conversations; with `chosen`, only those whose title or id matches one."""
    wanted = [c.lower() for c in chosen]
    for conversation in read(path, fmt, user_name):
        cid = conversation.key.split(":", 1)[-1].lower()
        if not wanted or any(w in (conversation.title.lower(), cid, conversation.model.lower()) for w in wanted):
            yield conversation


def import_history(
    store: ImportStore,
    path: Path,
    fmt: str,
    chosen: Iterable[str] = (),
    user_name: str = "",
    progress: Progress | None = None,
) -> ImportReport:
    """Import the export at `path` into `store` (see the module's docstring)."""
    fmt = detect(path) if fmt == "auto" else fmt
    chosen = tuple(chosen)
    report = ImportReport()
    plan: list[tuple[float, str, int]] = []  # (started, session key, new turns): the id layout
    for conversation in conversations(path, fmt, chosen, user_name):  # pass 1: all of it readable?
        report.conversations += 1
        if conversation.instructions:
            report.instructions.append(conversation.instructions)
        if conversation.assistant_name:
            report.assistant_names.add(conversation.assistant_name)
        report.notes.add(conversation)
        for n, session in enumerate(sessions_of(conversation, fmt)):
            new = store.new_origins([_origin(session, m) for m in session.turns])
            report.already += len(session.turns) - len(new)
            if new:
                plan.append((session.started, f"{session.conversation}#{n}", len(new)))
    total = sum(n for _, _, n in plan)
    if not plan:
        return report  # all of it was imported before (what is left to learn: `learn`)
    layout = store.reserve_imported(len(plan), total)
    offsets: dict[str, tuple[int, int]] = {}
    session_id, turn_id = layout
    for _, key, n in sorted(plan):  # oldest first: ids rise with time
        offsets[key] = (session_id, turn_id)
        session_id, turn_id = session_id + 1, turn_id + n
    written = 0
    for conversation in conversations(path, fmt, chosen, user_name):  # pass 2: write
        for n, session in enumerate(sessions_of(conversation, fmt)):
            place = offsets.get(f"{session.conversation}#{n}")
            if place is None:
                continue
            unseen = set(store.new_origins([_origin(session, m) for m in session.turns]))
            rows = [
                (m.role, m.text, m.time or session.started, _origin(session, m))
                for m in session.turns
                if _origin(session, m) in unseen
            ]
            added = store.add_imported_session(place[0], place[1], fmt, rows)
            if added:
                report.sessions += 1
                report.turns += added
                written += added
                if progress is not None:
                    progress(written, total)
    return report


def _origin(session: ImportedSession, message: ImportedMessage) -> str:
    return f"{session.conversation}:{message.key}"


def learn(store: ImportStore, progress: Progress | None = None) -> int:
    """Summaries and pattern facts for every imported session that has none yet, a
    session per transaction (a killed run goes on where it stopped). Instant methods
    only (summaries.py, facts.py: nothing invented); returns the sessions learned."""
    total, done = store.count_unlearned_imports(), 0
    while batch := store.unlearned_imports():
        for session_id in batch:
            turns = store.turns(session_id, limit=100_000)
            learned = [
                (t.id, f.text, f.key, f.importance, f.confidence)
                for t in turns
                if t.role == "user"
                for f in facts.extract(t.text)
            ]
            store.learn_imported(session_id, summarize_session(turns) if turns else "", learned)
            done += 1
            if progress is not None:
                progress(done, total)
    return done
