"""A reply ends at a sentence end once it is long enough.

A spoken reply should be one to three short sentences (the personas ask for under 30
words), but small models run on until `max_tokens` cuts them mid-sentence: in
scripts/bench_returning.py's tiny chat, 33 of 40 replies ended mid-word ("Her name is
Priya, and she"), and generating them was most of each line's time. So once a reply
has `wrap_up_words` words, it ends at its next sentence end: the stream is closed
there, which stops generation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from voice_companion.core.language import HAN

# A sentence end: Western punctuation followed by a space (so "3.5" and "Mr." before
# a name... are mostly safe: a name after "Mr." is rare in a spoken reply), or CJK
# punctuation, which needs nothing after it. Closing quotes and brackets go with it.
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’)\]]*(?=\s)|[。！？]+[”’」』）]*")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")
_HAN_CHAR = re.compile(f"[{HAN}]")
HAN_PER_WORD = 2  # two Chinese characters say about as much as one English word


def spoken_words(text: str) -> float:
    """About how many words `text` says (a Chinese character is half of one)."""
    han = len(_HAN_CHAR.findall(text))
    return len(_WORD.findall(_HAN_CHAR.sub(" ", text))) + han / HAN_PER_WORD


async def wrapped_up(deltas: AsyncIterator[str], wrap_up_words: int) -> AsyncIterator[str]:
    """`deltas`, ending at the first sentence end after `wrap_up_words` words (0: all).

    Nothing is held back: a sentence end is seen once the delta after it begins with a
    space, and the text from there on is dropped."""
    text = ""
    searched = 0  # sentence ends before this were too early
    async for delta in deltas:
        if not wrap_up_words:
            yield delta
            continue
        start = len(text)
        text += delta
        for end in _SENTENCE_END.finditer(text, searched):
            searched = end.end()
            if spoken_words(text[: end.end()]) >= wrap_up_words:
                if end.end() > start:
                    yield text[start : end.end()]
                return
        yield delta
