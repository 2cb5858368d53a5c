"""Recall by meaning: what the user said, as sentence vectors, searched in memory.

The vectors live in the store (`turn_vectors`, a cache); this index keeps them in RAM
as one float32 matrix (~1.5 KB a user turn: 77 MB at 50,000) and picks up new ones
before each search. The cosine alone says little: with e5 every line scores 0.75-0.9
against every question, small talk included ("Hi!" 0.82 against a line about a walk).
What marks a real match is how far it stands above the crowd, the 10th-best distinct
score: the mention scored 0.03-0.10 above it for 17 of 19 bench_recall questions, small
talk at most 0.013 (scripts/bench_recall.py's history, 1,519 lines). "Distinct" because a
line said often counts once: at 50,000 lines, where each filler line recurs ~6 times,
the plain 10th-best left the meaning questions 1 of 4; counted once, 3 of 4. The
crowd is the lines in the question's script: among English lines the one Chinese line
stood out for any Chinese question ("晚上好" recalled "我最喜欢吃外婆做的红烧肉"), so a
question is matched against lines written like it (asking in English about something
said in Chinese is left to the words and the facts).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from voice_companion.companion.memory.sqlite_store import FORGOTTEN
from voice_companion.companion.memory.types import MemoryStore, Turn
from voice_companion.core.errors import CompanionError
from voice_companion.core.text import has_cjk
from voice_companion.engines.embeddings import DIMENSIONS, Embedder

log = logging.getLogger(__name__)

STANDS_OUT = 0.025  # above the 10th-best line's cosine: a match, not the crowd
CROWD = 10
MIN_LINES = 100  # fewer: the crowd is too thin to tell a match from small talk
EMBED_BATCH = 32


@dataclass(frozen=True)
class VectorHit:
    turn: Turn
    margin: float  # its cosine minus the 10th-best line's


@dataclass(frozen=True)
class Standing:
    hits: list[VectorHit]  # the lines that stand out, best first
    margins: dict[int, float]  # turn id → how far above the crowd (the hits and the candidates asked about)


class VectorIndex:
    def __init__(self, store: MemoryStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._ids = np.zeros(0, dtype=np.int64)
        self._chinese = np.zeros(0, dtype=bool)
        self._matrix = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self._seq = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def load_in_background(self) -> None:
        """Read the stored vectors now, off the caller's path: 50,000 take ~0.2 s, which the
        first question of a session would otherwise wait for."""
        threading.Thread(target=self._load, name="vector-index", daemon=True).start()

    def _load(self) -> None:
        try:
            self.refresh()
        except (sqlite3.Error, CompanionError) as exc:  # closed meanwhile: the next search loads
            log.debug("vectors not loaded ahead: %s", exc)

    def refresh(self) -> None:
        """Load the vectors written since the last call (by this process or another)."""
        with self._lock:
            while rows := self.store.vectors_since(self._seq):
                ids = np.array([turn_id for _, turn_id, _, _ in rows], dtype=np.int64)
                chinese = np.array([zh for _, _, zh, _ in rows], dtype=bool)
                blob = b"".join(vector for _, _, _, vector in rows)
                matrix = np.frombuffer(blob, dtype=np.float16).reshape(len(rows), DIMENSIONS).astype(np.float32)
                self._ids = np.concatenate([self._ids, ids])
                self._chinese = np.concatenate([self._chinese, chinese])
                self._matrix = np.concatenate([self._matrix, matrix])
                self._seq = rows[-1][0]

    def search(self, query: str, before_turn: int | None = None, k: int = 8, also: Sequence[int] = ()) -> Standing:
        """The user's past lines that stand out as meaning what `query` asks (best first),
        and how far each of `also` (other candidates: the full-text hits) stands out."""
        self.refresh()
        ids = self._ids
        valid = self._chinese == has_cjk(query)
        if before_turn is not None:
            valid &= ids < before_turn
        if int(valid.sum()) < MIN_LINES:
            return Standing([], {})
        # scored in place, the rest masked: a copy of the matrix per question cost ~50 ms at 50,000 lines
        cosines = np.where(valid, self._matrix @ self.embedder.query(query), -np.inf)
        best = np.argpartition(-cosines, CROWD * 20)[: CROWD * 20] if len(cosines) > CROWD * 20 else np.arange(len(ids))
        best = best[np.argsort(-cosines[best])]
        # the crowd: the 10th-best distinct score (a line said often, "ok", counts once)
        distinct = np.unique(np.round(cosines[best][np.isfinite(cosines[best])], 5))[::-1]
        crowd = float(distinct[min(CROWD, len(distinct)) - 1])
        margins: dict[int, float] = {}
        if also:
            rows = np.nonzero(np.isin(ids, np.asarray(also, dtype=np.int64)) & valid)[0]
            margins = {int(ids[row]): float(cosines[row]) - crowd for row in rows}
        chosen = list(dict.fromkeys(int(ids[i]) for i in best if cosines[i] >= crowd + STANDS_OUT))[:k]
        found = {t.id: t for t in self.store.turns_by_id(chosen)}
        hits = []
        for row in best:
            turn = found.pop(int(ids[row]), None)
            if turn is not None and turn.text != FORGOTTEN:
                margins[turn.id] = float(cosines[row]) - crowd
                hits.append(VectorHit(turn, margins[turn.id]))
        return Standing(hits, margins)


def embed_pending(
    store: MemoryStore,
    embedder: Embedder,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Give every user turn without a vector one, newest first, a batch per transaction
    (a killed run goes on where it stopped); returns how many were embedded."""
    total = store.count_unembedded_turns() if progress is not None else 0  # a full scan: only for a bar
    done = 0
    while not stop() and (turns := store.unembedded_turns(EMBED_BATCH)):
        embed_turns(store, embedder, turns)
        done += len(turns)
        if progress is not None:
            progress(min(done, total), total)
    return done


def embed_turns(store: MemoryStore, embedder: Embedder, turns: list[Turn]) -> None:
    """Store a vector (float16: half the disk, the ranking unchanged) for each turn."""
    vectors = embedder.passages([t.text for t in turns]).astype(np.float16)
    store.add_vectors([(t.id, has_cjk(t.text), v.tobytes()) for t, v in zip(turns, vectors, strict=True)])
