"""Short summaries of conversation: of a past session, and of turns rolled out of the window.

Extractive on purpose: built from the user's own words, instantly, with nothing
invented, so it can run on the live path when the context window fills.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from voice_companion.companion.memory.sqlite_store import FORGOTTEN
from voice_companion.companion.memory.types import Turn
from voice_companion.core.text import estimate_tokens, has_cjk, keywords, shorten


def summarize_turns(turns: Sequence[Turn], limit_tokens: int = 60) -> str:
    """What the user talked about, in their words: the most content-rich utterances, in order."""
    said = [t for t in turns if t.role == "user" and t.text.strip() and t.text != FORGOTTEN]
    if not said:
        return ""
    ranked = sorted(said, key=lambda t: -len(keywords(t.text)))
    per_item = max(12, limit_tokens // 4)
    chosen: list[Turn] = []
    used = 0
    for turn in ranked:
        cost = estimate_tokens(shorten(turn.text, per_item)) + 2
        if used + cost > limit_tokens and chosen:
            continue
        chosen.append(turn)
        used += cost
    chosen.sort(key=lambda t: t.id)
    lead = "用户说过：" if all(has_cjk(t.text) for t in chosen) else "the user said: "
    return lead + "; ".join(f"“{shorten(t.text, per_item)}”" for t in chosen)


def summarize_session(turns: Sequence[Turn], limit_tokens: int = 60) -> str:
    """One past session, dated, for the next session's prompt and `memory list`."""
    body = summarize_turns(turns, limit_tokens)
    if not body:
        return ""
    day = time.strftime("%a %d %b %Y", time.localtime(turns[0].time))
    return f"{day} ({sum(t.role == 'user' for t in turns)} turns): {body}"
