"""Where a reply ends: at a sentence end once it is long enough, and before a
help-desk closer ("Let me know if there's anything else…").

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
    if not wrap_up_words:
        async for delta in deltas:
            yield delta
        return
    text = ""
    searched = 0  # sentence ends before this were too early
    async for delta in deltas:
        start = len(text)
        text += delta
        for end in _SENTENCE_END.finditer(text, searched):
            searched = end.end()
            if spoken_words(text[: end.end()]) >= wrap_up_words:
                if end.end() > start:
                    yield text[start : end.end()]
                return
        yield delta


# Help-desk closers: a companion does not end a chat like a support agent ("Let me know
# if there's anything else I can help you with today."). The prompt asks for that first;
# small models say them anyway, so a reply ends where one begins (after its first sentence).
HELP_DESK = re.compile(
    r"(?:let me know if|let me know whether|(?:is there|if there'?s|if there is) anything else"
    r"|how (?:can|may) i (?:help|assist)|what can i (?:help you with|do for you)"
    r"|feel free to (?:ask|reach out|let me know|share)|don'?t hesitate to (?:ask|reach out|contact|let me know)"
    r"|if you (?:have|need) any(?:thing)?(?: other| more| further)? ?(?:questions?|help|assistance|else)"
    r"|i'?m (?:always )?here to (?:help|assist)|i hope (?:this|that) helps"
    r"|还有什么(?:我)?(?:可以|能)(?:帮|为)|有什么(?:我)?(?:可以|能)(?:帮|为)(?:你|您)|如果你?还?有(?:任何|其他)?.{0,8}?(?:问题|需要|想法)"
    r"|请?随时(?:告诉|联系)我|希望(?:这|我的回答)?(?:对你)?有所?帮助"
    r"|n'h[ée]site(?:z)? pas [àa] (?:me |nous )?(?:demander|poser|contacter|revenir)"
    r"|si (?:tu as|vous avez) (?:d'autres|des) questions"
    r"|(?:est-ce qu')?il y a autre chose|comment (?:puis-je|je peux) (?:t'|vous )?aider"
    r"|je suis l[àa] pour (?:t'|vous )?aider)",
    re.IGNORECASE,
)
_DECIDE_CHARS = 28  # enough of a sentence's start to tell a closer from anything else
# How closers begin: a sentence that cannot begin one of these goes on at once. The
# clause chunker needs the next sentence's first letter to close the one before, so a
# sentence held back longer would delay the voice ("Oh no!" waited for "Are you…").
OPENERS = (
    "let me know", "is there anything", "if there's anything", "if there is anything", "how can i",
    "how may i", "what can i", "feel free", "don't hesitate", "do not hesitate", "if you have any",
    "if you need any", "i'm here to", "i am here to", "i'm always here to", "i hope this", "i hope that",
    "还有什么", "请随时", "有什么我", "有什么可以", "有什么能", "如果你", "如果还有", "如果有任何", "随时",
    "希望这", "希望对你", "希望我的", "n'hésite", "n'hesite", "si tu as", "si vous avez",
    "est-ce qu'il y a autre", "il y a autre",
    "comment puis-je", "comment je peux", "je suis là pour", "je suis la pour",
)  # fmt: skip
_ENDED = re.compile(r"[.!?…,;]+[\"”’)\]]*$")
# Where a closer may begin: a sentence end, or a comma ("That's okay, let me know if…").
_BOUNDARY = re.compile(_SENTENCE_END.pattern + r"|[,;](?=\s)|[，；]")


async def without_closers(deltas: AsyncIterator[str]) -> AsyncIterator[str]:
    """`deltas`, ending before a help-desk closer that begins a later clause.

    The start of each clause after the first is held until it can be told apart (at
    once when it begins like no closer; else _DECIDE_CHARS or its end): never the
    first clause, which the user waits for."""
    said = ""  # passed on
    buffer = ""  # received, not yet passed on
    deciding = False  # the buffer begins a new sentence, not yet told apart
    async for delta in deltas:
        buffer += delta
        while buffer:
            if not deciding and _ENDED.search(said) and buffer[0].isspace():
                deciding = True  # the sentence ended with the last delta
            if deciding:
                verdict = _closer(buffer.lstrip())
                if verdict is None:
                    break  # wait for more of it
                if verdict:
                    return  # the stream is closed: generation stops
            end = _BOUNDARY.search(buffer)
            cut = end.end() if end else len(buffer)
            said, buffer = said + buffer[:cut], buffer[cut:]
            yield said[len(said) - cut :]
            deciding = end is not None
    if buffer and not (deciding and HELP_DESK.match(buffer.lstrip())):
        yield buffer


def _closer(start: str) -> bool | None:
    """Does a sentence beginning with `start` close like a help desk? None: too soon to tell."""
    text = start.casefold().replace("’", "'")
    if not text:
        return None
    if not any(o.startswith(text) or text.startswith(o) for o in OPENERS):
        return False  # it begins like no closer: let it go now
    if HELP_DESK.match(start):
        return True
    if len(text) >= _DECIDE_CHARS or _SENTENCE_END.search(start):
        return False
    return None


def shaped(deltas: AsyncIterator[str], wrap_up_words: int) -> AsyncIterator[str]:
    """The reply as the companion says it: no help-desk closer, wrapped up in time."""
    return wrapped_up(without_closers(deltas), wrap_up_words)
