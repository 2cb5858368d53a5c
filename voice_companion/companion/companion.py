"""Opening a companion: its persona, its memory, and a conversation that resumes it.

Every front end (desk `talk`, `chat`, `reply`, the phone server) opens the same
companion the same way, so whichever one the user picks up, it is the same friend
with the same memories. Which companion: `--companion NAME`, else a non-default
`companion.name` in config.toml, else the one `persona use` chose, else Mia.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from voice_companion.companion import macros
from voice_companion.companion.library import DEFAULT_ID, MEMORY_FILE, Library, picture_in
from voice_companion.companion.memory import greetings
from voice_companion.companion.memory.context import Budget
from voice_companion.companion.memory.conversation import MemoryConversation
from voice_companion.companion.memory.retrieval import Retriever
from voice_companion.companion.memory.spooling_store import SpoolingStore
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore
from voice_companion.companion.memory.types import ImportStore, MemoryStore
from voice_companion.companion.memory.vectors import VectorIndex
from voice_companion.companion.memory.worker import MODES, finish_orphaned_sessions
from voice_companion.companion.persona import Persona
from voice_companion.core.config import CompanionSettings, Settings, given
from voice_companion.core.errors import ConfigError
from voice_companion.core.prompts import persona_base
from voice_companion.engines import embeddings, llm_state
from voice_companion.engines.llm import LLMBackend
from voice_companion.engines.models import tiers

log = logging.getLogger(__name__)
DEFAULT_NAME = CompanionSettings().name


@dataclass
class Companion:
    id: str
    persona: Persona
    directory: Path
    store: MemoryStore
    _vectors: VectorIndex | None = field(default=None, repr=False)  # one per process: every call shares it

    def system_prompt(self, settings: Settings) -> str:
        base = given(settings.companion.persona, persona_base(self.persona.language))
        return self.persona.system_prompt(base, self.user_name())

    def user_name(self) -> str:
        """The user's name as the memory knows it ("" if not told): a card's {{user}}."""
        named = [m for m in self.store.memories(("fact",)) if m.key == "name"]
        return macros.name_in(named[-1].text) if named else ""

    def conversation(self, settings: Settings, llm: LLMBackend | None = None, keep: bool = True) -> MemoryConversation:
        """A new session of this companion, resuming where the last one stopped.
        `keep=False`: it reads the memory but writes nothing (the demo)."""
        choice = tiers.select(settings)
        budget = Budget.for_context(
            tiers.context_tokens(settings, choice),
            tiers.sampling(settings, choice).max_tokens,
            tiers.recall_cap(choice),
        )
        if keep:
            finish_orphaned_sessions(self.store)
        greeting = self.greeting()  # before the new session exists: "last time" is the previous one
        conversation = MemoryConversation(
            self.store,
            self.system_prompt(settings),
            budget,
            llm,
            extraction_mode(settings, choice),
            settings.memory.recall_k,
            retriever=Retriever(self.store, vectors=self.vectors(settings)),
            backend=choice.backend,
            keep=keep,
            state_dir=self.state_dir if settings.llm.warm_start else None,
        )
        conversation.greeting = greeting
        conversation.quoted_dialogue = self.persona.quotes_dialogue
        conversation.language = self.persona.language
        return conversation

    def vectors(self, settings: Settings) -> VectorIndex | None:
        """Its index for recall by meaning (None: off in the config, or no embedder)."""
        if self._vectors is None and settings.memory.recall_by_meaning:
            embedder = embeddings.shared()
            self._vectors = VectorIndex(self.store, embedder) if embedder is not None else None
            if self._vectors is not None:
                self._vectors.load_in_background()
        return self._vectors

    @property
    def picture(self) -> Path | None:
        """Its picture (from an imported card), shown on the call screen."""
        return picture_in(self.directory)

    @property
    def state_dir(self) -> Path:
        """Saved LLM states of the next session's prompt (a cache: not exported)."""
        return llm_state.folder(self.directory)

    def greeting(self) -> str:
        """The persona's greeting; after an earlier session, the one the LLM wrote at its
        end, picking up from it in its own words (memory/greetings.py)."""
        hello = self.persona.greeting_for(self.user_name()) or ("你好！" if self.persona.language == "zh" else "Hi!")
        last = next((s for s in self.store.sessions(5) if s.turns), None)
        return (greetings.load(self.store, last.id) if last else "") or hello

    def close(self) -> None:
        self.store.close()


def choose(settings: Settings, wanted: str | None = None) -> str:
    """Which companion to open (see the module docstring); a new name makes a new companion."""
    library = Library(settings.paths.data_dir)
    if wanted:
        return library.require(wanted)
    configured = settings.companion.name if settings.companion.name != DEFAULT_NAME else None
    if configured:
        return library.find(configured) or library.install(Persona(configured))
    return library.active() or DEFAULT_ID


def open_companion(settings: Settings, wanted: str | None = None) -> Companion:
    library = Library(settings.paths.data_dir)
    cid = choose(settings, wanted)
    directory = library.directory(cid)
    persona = library.persona(cid)
    store = SpoolingStore(open_store(settings.memory.database_url, cid, directory))  # a full disk loses no turn
    _sync_lore(store, persona)
    return Companion(cid, persona, directory, store)


def open_store(database_url: str, companion: str, directory: Path) -> ImportStore:
    """The companion's memory: its SQLite file, or its schema in a PostgreSQL database."""
    if not database_url:
        return SQLiteMemoryStore(directory / MEMORY_FILE)
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"memory.database_url {database_url!r}: expected postgresql://user@host/database, or empty")
    try:
        from voice_companion.companion.memory.postgres_store import PostgresMemoryStore
    except ImportError as exc:
        raise ConfigError("memory in PostgreSQL needs psycopg: pip install 'voice-companion[postgres]'") from exc
    try:
        return PostgresMemoryStore(database_url, companion)
    except ConnectionError as exc:
        raise ConfigError(f"{exc}: is PostgreSQL running there? (memory.database_url / --database)") from exc


def _sync_lore(store: MemoryStore, persona: Persona) -> None:
    """The persona's lore entries live in the store, so search finds them like any memory."""
    have = {m.text for m in store.memories(("lore",))}
    for entry in persona.lore:
        if entry.content not in have:
            store.add_memory("lore", entry.content, 0.6, 1.0, key="lore:" + "|".join(entry.keys))


def extraction_mode(settings: Settings, choice: tiers.Choice) -> str:
    mode = settings.memory.llm_extraction
    if mode == "auto":
        if choice.backend == "openai":
            return "after_turn"
        return "off" if choice.tier is not None and choice.tier.name == "tiny" else "session_end"
    if mode not in MODES:
        raise ConfigError(f"memory.llm_extraction must be auto, {', '.join(MODES)}; got {mode!r}")
    return mode
