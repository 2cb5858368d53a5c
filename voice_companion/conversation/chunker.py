"""Streaming LLM text -> speakable clauses, so TTS can start on the first clause.

Two incremental stages: a markdown remover, then a clause splitter working on the
clean text. Each decision reads only text already received plus a bounded
lookahead, and waits when that lookahead is missing, so any way of cutting the
stream into deltas gives exactly the chunks that `split_clauses(text)` gives.
"""

from __future__ import annotations

import re
import unicodedata

from voice_companion.core.language import CJK_KANA_HANGUL, UNSPACED

# ---------------------------------------------------------------- markdown --

_LINE_UNDECIDED = re.compile(r"[ \t#>*+\-_=|:.)\d~`]*")  # could still be markup
_LINE_PREFIX = re.compile(r"[ \t]*(?:>[ \t]?)*[ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|\d{1,9}[.)][ \t]+)?")
_FENCE = re.compile(r"[ \t]*(?:```|~~~)")
_RULE = re.compile(r"[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*")
_PLAIN = re.compile(r"[^*_~`!\[\]|\\\n]+")
_ESCAPABLE = set("\\`*_{}[]()#+-.!|>~")


def _match_end(pattern: re.Pattern[str], s: str, pos: int = 0) -> int:
    """Where `pattern` stops matching at `pos`, for a pattern that always matches there."""
    m = pattern.match(s, pos)
    assert m is not None, pattern.pattern
    return m.end()


class _MarkdownStream:
    """Incremental markdown remover; holds back only what it cannot decide yet."""

    def __init__(self) -> None:
        self._buf = ""
        self._line_start = True
        self._fence = False  # inside a fenced code block (dropped entirely)
        self._skip = ""  # "alt": image alt text, "url": link target
        self._depth = 0  # parenthesis depth inside a link target
        self._prev = " "  # last consumed raw char, to tell *emphasis* from 2 * 3

    def feed(self, delta: str, final: bool = False) -> str:
        self._buf += delta
        out: list[str] = []
        while self._buf:
            n = self._step(final, out)
            if n is None:
                break
            if n:
                self._prev, self._buf = self._buf[n - 1], self._buf[n:]
        return "".join(out)

    def _step(self, final: bool, out: list[str]) -> int | None:
        """Consume a prefix of the buffer (count returned), or None to wait."""
        b = self._buf
        if self._fence or self._line_start:
            nl = b.find("\n")
            line, complete = (b, final) if nl < 0 else (b[:nl], True)
            whole = len(line) + (nl >= 0)
            if self._fence:  # drop code lines, watch for the closing fence
                if not complete:
                    return None
                if self._line_start and _FENCE.match(line):
                    self._fence = False
                self._line_start = True
                return whole
            undecided = _match_end(_LINE_UNDECIDED, line) == len(line)
            if undecided and not complete:
                return None
            if undecided and (_RULE.fullmatch(line) or _is_table_rule(line)):
                return whole
            self._line_start = False
            fence = _FENCE.match(line)
            if fence:
                self._fence = True
                return fence.end()
            return _match_end(_LINE_PREFIX, line)  # heading, quote, bullet
        c = b[0]
        if self._skip:
            if c == "\n" or (self._skip == "alt" and c == "]"):
                self._skip = ""
                return 0
            if self._skip == "url":
                self._depth += (c == "(") - (c == ")")
                self._skip = "url" if self._depth else ""
            return 1
        if c == "\n":
            self._line_start = True
            out.append(c)
            return 1
        if m := _PLAIN.match(b):
            out.append(m.group())
            return m.end()
        if c in "[`|":  # link text opener, inline code, table cell
            out.append(" " if c == "|" else "")
            return 1
        run = len(b) - len(b.lstrip(c)) if c in "*_~" else 1
        if run == len(b) and not final:
            return None  # the next char decides
        nxt = b[run] if run < len(b) else " "
        if c == "\\":
            out.append(nxt if nxt in _ESCAPABLE else c)
            return 2 if nxt in _ESCAPABLE else 1
        if c in "!]":
            if c + nxt in ("![", "]("):
                self._skip, self._depth = ("alt" if c == "!" else "url"), 1
                return 2
            out.append("!" if c == "!" else "")
            return 1
        p = self._prev
        keep = (
            (c == "_" and p.isalnum() and nxt.isalnum())  # snake_case
            or (c == "~" and run == 1)  # ~5 minutes
            or (c == "*" and run == 1 and (p.isspace() and nxt.isspace() or p.isdigit() and nxt.isdigit()))
            or (c == "*" and nxt in "\ufe0f\u20e3")  # keycap emoji *️⃣
        )
        out.append(b[:run] if keep else "")
        return run


def _is_table_rule(line: str) -> bool:
    return "|" in line and "-" in line and set(line) <= set(" \t|:-")


def strip_markdown(text: str) -> str:
    """Remove markdown a TTS would read aloud; plain text comes back unchanged."""
    return _MarkdownStream().feed(text, final=True)


# ----------------------------------------------------------------- clauses --

_ENDS = ".!?…。．｡！？；"
_CJK_PUNCT = "。．｡！？；，、："
_PUNCT = _ENDS + ",;:" + _CJK_PUNCT
_CLOSERS = "\"')]»”’」』）》】〉"
_OPENERS = "«“‘([「『（《【〈"
_FR_TIGHT = "?!:;»"  # French puts a space before these: never break there
_NBSP = "\u00a0\u202f\u2007"
_JOINERS = "\u200d\u20e3\ufe0e\ufe0f"  # ZWJ, keycap, variation selectors
_EMOJI = "\u200d\u20e3\ufe0f\u2600-\u27bf\U0001f000-\U0001faff\U000e0020-\U000e007f"
# Punctuation plus what stays attached to it: closing quotes, French " »", emoji.
_RUN = re.compile(f"[{re.escape(_PUNCT)}]+(?:[ {_NBSP}]*»|[{re.escape(_CLOSERS)}{_EMOJI}])*")
_CJK = re.compile(f"[{UNSPACED}]")
_INITIALISM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S, e.g, J.K
_ABBREVIATIONS = {
    "dr", "mr", "mrs", "ms", "st", "prof", "sr", "jr", "vs", "cf", "fig", "approx",
    "mme", "mlle", "mgr", "ex",
}  # fmt: skip


class ClauseChunker:
    """Feed text deltas; get back clauses ready to speak.

    Sentence ends always close a clause; commas, colons and semicolons only once
    it has `first_min_chars` (first clause: fast first audio) or `min_chars`.
    Longer than `max_chars`: cut at the last space, or anywhere in CJK text.
    The first clause also ends after `first_max_words` words when no punctuation
    came (0: never): the reply starts speaking ~100-200 ms sooner.
    """

    def __init__(
        self, first_min_chars: int = 12, min_chars: int = 30, max_chars: int = 220, first_max_words: int = 0
    ) -> None:
        self.first_max_words = first_max_words
        self.first_min_chars = first_min_chars
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._reset()

    def _reset(self) -> None:
        self._md = _MarkdownStream()
        self._buf = ""  # markdown-free text not yet emitted
        self._first = True
        self._resume = (0, 0)  # scan position and forced-cut search already done

    def push(self, delta: str) -> list[str]:
        """Clauses complete so far (may be empty)."""
        self._buf += self._md.feed(delta)
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """Whatever remains at end of stream; the chunker is then ready for reuse."""
        self._buf += self._md.feed("", final=True)
        out = self._drain(final=True)
        if tail := _clean(self._buf):
            out.append(tail)
        self._reset()
        return out

    def _drain(self, final: bool) -> list[str]:
        out = []
        while (cut := self._find_cut(self._buf, final)) is not None:
            chunk, self._buf, self._resume = _clean(self._buf[:cut]), self._buf[cut:], (0, 0)
            if chunk:
                out.append(chunk)
                self._first = False
        return out

    def _find_cut(self, s: str, final: bool) -> int | None:
        """End index of the next clause in `s`, or None until more text arrives.

        Everything before the position where a previous call stopped was already
        decided, so the scan resumes there: a push costs O(len(delta)).
        """
        n = len(s)
        lead = n - len(s.lstrip())
        i, checked = (max(x, lead) for x in self._resume)
        while True:
            if i - lead > self.max_chars and (i < n or final):  # too long: force a cut
                for p in range(i - 1, checked, -1):
                    if _breakable(s, p):
                        return p
                checked = i - 1
            if i == n:
                self._resume = (i, checked)
                return None
            if s[i] == "\n" and _has_content(s[lead:i]):
                return i
            if s[i] not in _PUNCT:
                if self._first and s[i] == " " and self._enough_words(s[lead:i]) and _breakable(s, i):
                    return i
                i += 1
                continue
            j = k = _match_end(_RUN, s, i)  # s[i] is punctuation
            while k < n and s[k].isspace():
                k += 1
            if k == n and not final and "\n" not in s[j:k]:
                self._resume = (i, checked)
                return None  # the next visible char decides
            if self._ends_clause(s, lead, i, j, k):
                return j
            i = j

    def _enough_words(self, body: str) -> bool:
        """Latin text long enough to speak without waiting for punctuation."""
        if not self.first_max_words or _CJK_RE.search(body):
            return False
        return len(body.split()) >= self.first_max_words

    def _ends_clause(self, s: str, lead: int, i: int, j: int, k: int) -> bool:
        """Does punctuation s[i:j] (next non-space at k) end a clause?"""
        run, body, nxt = s[i:j], s[lead:i], s[k] if k < len(s) else ""
        if not _has_content(body):
            return False
        if not any(c in _CJK_PUNCT for c in run):  # Latin needs a space after
            if k == j < len(s):
                return False  # 3.14, 1,000, e.g, http://x.y
            if run == "." and _is_abbreviation(body, nxt):
                return False
            if ("..." in run or "…" in run) and nxt.islower():
                return False  # "well... maybe"
        if any(c in _ENDS for c in run):
            return True
        limit = self.first_min_chars if self._first else self.min_chars
        return len(s[lead:j].strip()) >= limit


_CJK_RE = re.compile(f"[{CJK_KANA_HANGUL}]")


def _is_abbreviation(body: str, nxt: str) -> bool:
    """Is the '.' after `body` part of Dr. / M. / U.S. / e.g. rather than a full stop?"""
    m = re.search(r"\S+$", body)
    word = m.group().lstrip(_OPENERS + "\"'") if m else ""
    if word.lower() in _ABBREVIATIONS or _INITIALISM.fullmatch(word):
        return True
    if len(word) == 1 and word.isalpha() and word != "I":  # J. K. Rowling, M. Dupont
        return True
    return word.lower() == "etc" and nxt.islower()  # "etc." ends a sentence before a capital


def _breakable(s: str, p: int) -> bool:
    """May an over-long clause be cut between s[p-1] and s[p]?

    Latin text breaks at plain spaces only; CJK text anywhere next to a CJK char.
    Emoji are not CJK, so ZWJ sequences, modifiers, flags and keycaps stay whole.
    """
    a, b = s[p - 1], s[p]
    if b.isspace():
        nxt = s[p + 1] if p + 1 < len(s) else ""
        if a == "." and _is_abbreviation(s[: p - 1], nxt):
            return False  # keep "Dr. Smith", "p. ex."
        return b not in _NBSP and a != "«" and not (nxt and nxt in _FR_TIGHT)
    glued = b in _PUNCT + _CLOSERS + _JOINERS or a in _OPENERS + _JOINERS or unicodedata.combining(b)
    return bool(_CJK.match(a) or _CJK.match(b)) and not glued


def _has_content(text: str) -> bool:
    return any(c.isalnum() for c in text)


def _clean(chunk: str) -> str:
    """Collapse whitespace runs (keeping French non-breaking spaces) and trim."""
    return re.sub(f"[^\\S{_NBSP}]+", " ", chunk).strip()


def split_clauses(text: str, **kwargs: int) -> list[str]:
    """Chunk a whole text at once; identical to streaming it delta by delta."""
    chunker = ClauseChunker(**kwargs)
    return chunker.push(text) + chunker.flush()
