"""Stage directions are shown, never spoken.

Roleplay cards and small models write actions between asterisks (*smiles*), in
parentheses ("(smiles wistfully)"), or, in cards that quote their dialogue, as prose
around the quotes (`She walks over. "You're awake!"`). Read aloud, an imported card's
greeting spent 40 s on its narration. So the LLM's text goes through `NarrationMarker`,
which wraps each stage direction in OPEN/CLOSE marks (private-use characters the
clause splitter leaves in place); `NarrationSplitter` then gives each clause's words to
the voice and the whole clause, the action between asterisks, to the captions.

In a card that quotes its dialogue, prose outside quotes is narration only once the
reply has quoted something: a reply with no quotes at all is spoken whole (at its end,
since until then it could still turn out to be narration).
"""

from __future__ import annotations

import re

from voice_companion.core.language import HAN

OPEN, CLOSE = "\ue000", "\ue001"
_QUOTES = {'"': '"', "“": "”", "「": "」", "«": "»"}
_HAS_LETTER = re.compile(r"[^\W\d_]")
_SPACE_IN_HAN = re.compile(f"(?<=[{HAN}，。！？、]) (?=[{HAN}])")


class NarrationMarker:
    """Streaming: feed the LLM's deltas, get the same text with stage directions marked."""

    def __init__(self, quoted_dialogue: bool = False) -> None:
        self.quoted_dialogue = quoted_dialogue
        self._star = False  # inside *…*
        self._parens = 0  # inside (…), nested
        self._quote = ""  # inside a quote: the closing character awaited
        self._quoted = False  # the reply has quoted speech (quoted-dialogue cards)
        self._held = ""  # quoted-dialogue cards: prose before the first quote, undecided
        self._marked = False  # an OPEN mark is out without its CLOSE

    def feed(self, delta: str) -> str:
        out: list[str] = []
        for char in delta:
            self._step(char, out)
        return "".join(out)

    def flush(self) -> str:
        """The end of the reply: undecided prose was speech (no quote came); marks closed."""
        out = [self._held] if self._held else []
        self._held = ""
        if self._marked:
            out.append(CLOSE)
            self._marked = False
        return "".join(out)

    def _narrating(self) -> bool:
        outside_quotes = self.quoted_dialogue and self._quoted and not self._quote
        return self._star or self._parens > 0 or outside_quotes

    def _step(self, char: str, out: list[str]) -> None:
        before = self._narrating()
        if char == "*" and not self._parens:
            self._star = not self._star
        elif char in "(（" and not self._star:
            self._parens += 1
        elif char in ")）" and self._parens:
            self._parens -= 1
        elif self.quoted_dialogue and not self._star and not self._parens and self._is_quote(char):
            self._toggle_quote(char, out)
        else:
            self._emit(char, out)
            return
        if self._narrating() != before:
            self._mark(self._narrating(), out)

    def _is_quote(self, char: str) -> bool:
        return char == self._quote or (not self._quote and char in _QUOTES)

    def _toggle_quote(self, char: str, out: list[str]) -> None:
        if self._quote:
            self._quote = ""
            return
        if not self._quoted:  # the first quote: everything before it was narration
            self._quoted = True
            prose = self._held.replace(OPEN, "").replace(CLOSE, "")
            if prose.strip():
                out.append(OPEN + prose + CLOSE)
            self._held = ""
        self._quote = _QUOTES[char]

    def _undecided(self) -> bool:
        return self.quoted_dialogue and not self._quoted

    def _emit(self, char: str, out: list[str]) -> None:
        if self._undecided():
            self._held += char  # until a quote comes or the reply ends
        else:
            out.append(char)

    def _mark(self, narrating: bool, out: list[str]) -> None:
        if narrating == self._marked:
            return
        self._marked = narrating
        self._emit(OPEN if narrating else CLOSE, out)


class NarrationSplitter:
    """Clause by clause (a direction may span clauses): what to say and what to show."""

    def __init__(self) -> None:
        self._inside = False

    def split(self, clause: str) -> tuple[str, str]:
        """(spoken words, caption with each direction between asterisks)."""
        segments: list[tuple[bool, str]] = []  # (narration, text)
        current: list[str] = []
        for char in clause:
            if char in (OPEN, CLOSE):
                segments.append((self._inside, "".join(current)))
                current, self._inside = [], char == OPEN
            else:
                current.append(char)
        segments.append((self._inside, "".join(current)))
        spoken = " ".join(text for narration, text in segments if not narration)
        caption = " ".join(f"*{text.strip()}*" if narration else text for narration, text in segments if text.strip())
        return _tidy(spoken), _tidy(caption)


def speakable(text: str, quoted_dialogue: bool = False) -> str:
    """A whole text's spoken words (typed chat read aloud, a greeting shown as text)."""
    marker = NarrationMarker(quoted_dialogue)
    marked = marker.feed(text) + marker.flush()
    return NarrationSplitter().split(marked)[0]


def has_words(text: str) -> bool:
    return _HAS_LETTER.search(text) is not None


def _tidy(text: str) -> str:
    """One space between words; none where a direction left one inside Chinese text."""
    return _SPACE_IN_HAN.sub("", re.sub(r"\s+", " ", text)).strip()
