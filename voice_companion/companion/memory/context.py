"""The prompt under a token budget, laid out so its prefix stays the same turn after turn.

What changes least comes first, so the LLM's KV cache is reused (DESIGN.md):

    system   persona · who the user is (profile facts) · earlier sessions · earlier today
    …        the recent turns, verbatim and append-only, across sessions (window.py)
    user     the memories recalled for the message (its `context`), then the message itself

The system message changes only when the window fills and the oldest turns roll into a
summary (the profile is refreshed then too); recalled memories change every turn, so
they ride with the new message, after everything that can be cached, and stay with it
in the history (the window keeps them across sessions, window.py): the next prompt is
then the cached one plus the new message. Profile facts are
chosen by importance first, so who the user is never leaves the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from voice_companion.companion.memory.retrieval import Recalled
from voice_companion.companion.memory.types import Memory
from voice_companion.core.prompts import with_memory
from voice_companion.core.text import estimate_tokens, message_tokens, shorten

EPISODES_HEADER = "What you remember from earlier conversations with the user:"
ROLLED_HEADER = "Earlier in this conversation:"
RECALL_HEADER = "(Things you remember that may help: {items})"
ASKED_RECALL_EXTRA = 16  # tokens a question may recall beyond what a statement may


@dataclass(frozen=True)
class Budget:
    """Token shares of the prompt; the recent turns get what the system message leaves."""

    total: int  # the whole prompt: the context window minus the reply and a margin
    profile: float = 0.25
    episodes: float = 0.08
    rolled: float = 0.10
    recall: float = 0.12
    user: float = 0.10  # the new message itself
    # What may be recalled into a message, at most: recalled text is new to the LLM on
    # every turn, so it costs prefill time on the live path (tiers.py sizes it per brain).
    recall_cap: int = 10_000
    # The recent turns' share of the prompt, at least: the memory parts of the system
    # message shrink to leave it. scripts/bench_returning.py, tiny (1k window): with the
    # full shares the turns had 170 tokens, the window rolled at every line, and each
    # line re-read ~260 tokens. 40 % kept only the recent facts' profile (48 tokens) and
    # test_memory_recall missed "nurse" and "成都"; small's 2k window is not cut at 30 %.
    turns_min: float = 0.3

    def part(self, share: float) -> int:
        return max(16, int(self.total * share))

    @property
    def recall_tokens(self) -> int:
        """What a statement's recall may take."""
        return min(self.part(self.recall), self.recall_cap)

    @property
    def asked_recall_tokens(self) -> int:
        """What a question's (or a look back's) may take: more, because its answer is often
        a whole quoted turn (small's 16 tokens held no "On 03 Dec the user said: “…Thursday
        at nine.”"), and a right answer is worth ~0.3 s more once in a while. Kept small:
        the window reserves it, and tiny's profile (test_memory_recall) needs the room."""
        return self.recall_tokens + ASKED_RECALL_EXTRA

    def memory_parts(self, persona_tokens: int) -> tuple[int, int, int]:
        """Token limits of the profile, the earlier sessions and the rolled-out turns:
        their shares, cut where the turns would get less than `turns_min`. Summaries go
        first (down to 16 tokens each), who the user is last: a profile fact left out is
        not found again by recall when the words differ ("What is my job?" / "nurse")."""
        parts = [self.part(self.profile), self.part(self.episodes), self.part(self.rolled)]
        room = self.total * (1 - self.turns_min) - persona_tokens - self.asked_recall_tokens - self.part(self.user)
        excess = sum(parts) - max(48.0, room)
        for index in (2, 1, 0):  # rolled-out turns, earlier sessions, then the profile
            cut = min(max(0.0, excess), parts[index] - 16)
            parts[index] -= int(cut)
            excess -= cut
        profile, episodes, rolled = parts
        return profile, episodes, rolled

    def for_turns(self, system_tokens: int) -> int:
        return max(64, self.total - system_tokens - self.asked_recall_tokens - self.part(self.user))

    @classmethod
    def for_context(cls, context_tokens: int, reply_tokens: int, recall_cap: int = 10_000) -> Budget:
        return cls(max(256, context_tokens - reply_tokens - 64), recall_cap=recall_cap)


def pick_profile(memories: Sequence[Memory], limit: int) -> list[Memory]:
    """The most important facts that fit, in the order they were learned.

    Among equally important facts the older ones stay: the profile is then the same at
    the next window roll plus what is new at its end, so the rolled window shares most of
    its prompt with the last one and prefills in seconds (scripts/bench_returning.py: with
    the newest kept, each new fact pushed an old one out of the middle and every roll
    re-prefilled ~600 tokens, 15-20 s on `small`). A newer fact left out is still in the
    recent turns and found by recall."""
    chosen: list[Memory] = []
    used = 0
    for memory in sorted(memories, key=lambda m: (-m.importance * m.confidence, m.id)):
        cost = estimate_tokens(memory.text) + 2
        if used + cost > limit and memory.importance < 0.9:
            continue  # identity facts (name, home, family) stay even past the share
        chosen.append(memory)
        used += cost
    return sorted(chosen, key=lambda m: m.id)


def fit_latest(texts: Sequence[str], limit: int) -> list[str]:
    """The newest texts that fit together, oldest first."""
    kept: list[str] = []
    used = 0
    for text in reversed(texts):
        cost = estimate_tokens(text) + 2
        if used + cost > limit:
            break
        kept.append(text)
        used += cost
    return kept[::-1]


def system_text(persona_prompt: str, profile: Sequence[str], episodes: Sequence[str], rolled: Sequence[str]) -> str:
    text = with_memory(persona_prompt, profile)
    if episodes:
        text += "\n\n" + EPISODES_HEADER + "".join(f"\n- {e}" for e in episodes)
    if rolled:
        text += "\n\n" + ROLLED_HEADER + "".join(f"\n- {r}" for r in rolled)
    return text


def recall_note(recalled: Sequence[Recalled], limit: int, already: str = "") -> str:
    """What was recalled for a message (as much as fits), to go before its words;
    items in `already` (the notes still in the prompt) are not repeated.

    Recall comes first: the session's listen-ahead prefills the prompt for the words
    heard so far, and what they recall is usually what the whole message recalls, so
    at the end of the turn only the last words are new to the LLM (with the words
    first, the recalled text after them was prefilled again on every turn).

    Several past turns share one "the user said" ("On 03 Sep the user said: “A”; on
    09 Sep: “B”"): each one more costs ~4 tokens less, so `small`'s question budget (32
    tokens) holds two short quoted lines (scripts/bench_recall.py's combined questions
    "Which cities did I visit with Marco?": 35 tokens as two whole notes, 31 joined)."""
    chosen: list[Recalled] = []
    for item in recalled:
        if (f"“{item.quote}”" if item.quote else item.text) in already:
            continue
        if estimate_tokens(_joined([*chosen, item])) > limit:
            break
        chosen.append(item)
    return RECALL_HEADER.format(items=_joined(chosen)) if chosen else ""


def _joined(items: Sequence[Recalled]) -> str:
    """The items in their order, the past turns together where the first one is."""
    quotes = [i for i in items if i.quote]
    parts: list[str] = []
    for item in items:
        if not item.quote:
            parts.append(item.text)
        elif item is quotes[0]:
            parts.append("; ".join([item.text, *(f"on {q.said_on}: “{q.quote}”" for q in quotes[1:])]))
    return "; ".join(parts)


def drop_count(messages: Sequence[str], tokens: int) -> int:
    """How many of the oldest messages (whole user+assistant pairs) make up `tokens`."""
    costs = [message_tokens(m) for m in messages]
    dropped = count = 0
    while count < len(costs) and dropped < tokens:
        dropped += costs[count] + (costs[count + 1] if count + 1 < len(costs) else 0)
        count += 2
    return min(count, len(costs))


def shorten_all(texts: Sequence[str], each: int) -> list[str]:
    return [shorten(t, each) for t in texts]
