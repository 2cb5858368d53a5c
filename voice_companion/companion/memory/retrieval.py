"""Which memories matter for what the user just said: relevance, recency and importance.

Plain vector search alone is known to disappoint for companions; here the score mixes
relevance with how recent and how important each memory is, and lore entries wake up
when one of their keys is mentioned. A past turn is found by its words (FTS5: trigrams,
and Chinese two-character units) and, where the embedder is installed, by its meaning
(sentence vectors, memory/vectors.py), so a question that shares no word with what was
said still finds it; every candidate is then scored on both (scripts/bench_recall.py,
docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from voice_companion.companion.memory import facts
from voice_companion.companion.memory.sqlite_store import FORGOTTEN
from voice_companion.companion.memory.types import Hit, Memory, MemoryStore, Turn
from voice_companion.companion.memory.vectors import VectorIndex
from voice_companion.core.text import shorten

DAY = 86400.0
QUOTE_TOKENS = 40  # of a recalled turn's words, at most


@dataclass(frozen=True)
class Recalled:
    text: str  # as it goes into the prompt on its own
    score: float
    source: str  # "memory" | "turn"
    id: int
    said_on: str = ""  # a past turn: the day it was said ("03 Sep", "03 Sep 2025")
    quote: str = ""  # and its words (shortened), so several share one "the user said"


@dataclass(frozen=True)
class RecallWeights:
    relevance: float = 0.6
    recency: float = 0.2
    importance: float = 0.2
    half_life_days: float = 30.0
    turn_importance: float = 0.3  # a raw past utterance, not a distilled fact
    min_turn_relevance: float = 0.5  # of the best hit: weak matches only cost prefill time
    # A past turn a recalled fact was learned from says little more than the fact: it goes
    # after the lines that add something ("What is my daughter's exam?": "The user's daughter
    # is called Noor" and "my daughter Noor plays the violin" left no room for "Noor has her
    # violin exam…" in small's 32 tokens, scripts/bench_recall.py).
    restated_turn: float = 0.5  # of its relevance
    # A past turn's relevance with recall by meaning: this share from its words (bm25 of
    # the best), the rest from how far its meaning stands out (of the best line's margin).
    word_share: float = 0.4


class Retriever:
    def __init__(
        self, store: MemoryStore, weights: RecallWeights | None = None, vectors: VectorIndex | None = None
    ) -> None:
        self.store = store
        self.weights = weights or RecallWeights()
        self.vectors = vectors

    def recall(
        self, query: str, k: int = 6, before_turn: int | None = None, turns: bool = True, now: float | None = None
    ) -> list[Recalled]:
        """Up to `k` memories and (with `turns`) past user turns for `query`, best first;
        `before_turn` leaves out the turns still in the prompt's window."""
        now = now or time.time()
        w = self.weights
        scored: dict[str, Recalled] = {}

        def add(text: str, relevance: float, when: float, importance: float, source: str, id_: int, *said: str) -> None:
            recency = 0.5 ** (max(0.0, now - when) / (w.half_life_days * DAY))
            score = w.relevance * relevance + w.recency * recency + w.importance * importance
            if text not in scored or scored[text].score < score:
                scored[text] = Recalled(text, score, source, id_, *said)

        def add_memory(memory: Memory, relevance: float, when: float, importance: float) -> None:
            add(memory.text, relevance, when, importance, "memory", memory.id)
            if memory.source_turn is not None:
                told.add(memory.source_turn)

        told: set[int] = set()  # the turns the recalled facts came from

        for hits in (self.store.search_memories(query, limit=4 * k), self.store.search_memories_cjk(query, 4 * k)):
            for hit, relevance in _normalised(hits):
                memory = hit.item
                if isinstance(memory, Memory):
                    add_memory(memory, relevance, memory.time, memory.importance * memory.confidence)
        for memory in self._woken_lore(query):
            add_memory(memory, 1.0, memory.time, memory.importance)
        # "What is my job?": the fact in the "work" slot is the answer, and current (a newer
        # value replaces it), so it ranks first, above lines that only share a word
        for memory in self.store.facts_keyed(facts.slots_asked(query)):
            add_memory(memory, 1.0, now, 1.0)
        if turns:
            for turn, relevance in self._past_turns(query, before_turn, 4 * k):
                if turn.text != FORGOTTEN and relevance >= w.min_turn_relevance:
                    said = (said_on(turn, now), shorten(turn.text, QUOTE_TOKENS))
                    relevance *= w.restated_turn if turn.id in told else 1.0
                    add(past_turn(*said), relevance, turn.time, w.turn_importance, "turn", turn.id, *said)
        return sorted(scored.values(), key=lambda r: -r.score)[:k]

    def _past_turns(self, query: str, before_turn: int | None, limit: int) -> list[tuple[Turn, float]]:
        """Past user turns with their relevance (0..1, the best at 1): the full-text
        ranking alone, or every candidate of both searches scored by how far its meaning
        stands out from the crowd plus how well its words match (a line that only shares
        a word, "I cleaned the car" for "Which of my pets is scared of cleaning?", loses
        to one that means it, "my cat Miso hides under the bed whenever I vacuum")."""
        hits = self.store.search_turns(query, before_turn, limit=limit)
        by_words = [(h.item, r) for h, r in _normalised(hits) if isinstance(h.item, Turn)]
        if self.vectors is None:
            return by_words
        standing = self.vectors.search(query, before_turn, limit, also=[t.id for t, _ in by_words])
        top = max((h.margin for h in standing.hits), default=0.0)
        w = self.weights
        candidates = {t.id: (t, w.word_share * r) for t, r in by_words}
        for hit in standing.hits:
            candidates.setdefault(hit.turn.id, (hit.turn, 0.0))
        scored = []
        for turn_id, (turn, words) in candidates.items():
            margin = standing.margins.get(turn_id, 0.0)
            meaning = max(0.0, margin) / top if top > 0 else 0.0
            scored.append((turn, words + (1 - w.word_share) * meaning))
        best = max((score for _, score in scored), default=0.0)
        return sorted(((t, s / best) for t, s in scored if best > 0), key=lambda item: -item[1])

    def _woken_lore(self, query: str) -> list[Memory]:
        lowered = query.lower()
        return [
            m
            for m in self.store.memories(("lore",))
            if any(key and key.lower() in lowered for key in m.key.removeprefix("lore:").split("|"))
        ]


def _normalised(hits: Sequence[Hit]) -> list[tuple[Hit, float]]:
    """bm25 (lower is better, negative) to 0..1 with the best hit at 1."""
    if not hits:
        return []
    best = min(h.bm25 for h in hits)
    return [(h, h.bm25 / best if best < 0 else 1.0) for h in hits]


def said_on(turn: Turn, now: float | None = None) -> str:
    """The day of a past turn; with its year when that is not this one (an imported
    history reaches back years, and "when did I…?" needs it)."""
    when, today = time.localtime(turn.time), time.localtime(now)
    return time.strftime("%d %b" if when.tm_year == today.tm_year else "%d %b %Y", when)


def past_turn(day: str, quote: str) -> str:
    """A past turn as recall quotes it on its own (context.recall_note joins several)."""
    return f"On {day} the user said: “{quote}”"
