"""Clause chunker: examples per rule (English, Chinese, French) and streaming properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voice_companion.conversation.chunker import ClauseChunker, split_clauses, strip_markdown

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stream(text: str, cuts: list[int], **kwargs: int) -> list[str]:
    """Chunks obtained by pushing `text` cut at `cuts`, then flushing."""
    chunker, out, last = ClauseChunker(**kwargs), [], 0
    for cut in sorted(set(cuts)) + [len(text)]:
        out += chunker.push(text[last:cut])
        last = cut
    return out + chunker.flush()


# ------------------------------------------------------------------ examples --


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there! How are you today? I am fine.", ["Hello there!", "How are you today?", "I am fine."]),
        (
            "你好！今天天气很好，我们去公园散步吧。然后呢？",
            ["你好！", "今天天气很好，我们去公园散步吧。", "然后呢？"],
        ),
        (
            "Bonjour ! Comment ça va ? M. Dupont habite à Paris, près de la tour Eiffel.",
            ["Bonjour !", "Comment ça va ?", "M. Dupont habite à Paris, près de la tour Eiffel."],
        ),
        ("Wait for it… Done.", ["Wait for it…", "Done."]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_sentence_ends(text: str, expected: list[str]) -> None:
    assert split_clauses(text) == expected


def test_first_chunk_may_end_at_a_comma_later_ones_need_min_chars() -> None:
    text = "Well, I think we should go to the park, because the weather is nice, and it is warm."
    assert split_clauses(text) == [
        "Well, I think we should go to the park,",  # "Well," alone is under first_min_chars
        "because the weather is nice, and it is warm.",  # "...nice," is under min_chars
    ]
    assert split_clauses("好的，我们现在就出发去公园吧，好不好？", first_min_chars=3)[0] == "好的，"
    assert split_clauses("Sure: here it is.", first_min_chars=5) == ["Sure:", "here it is."]


def test_numbers_are_never_split() -> None:
    text = "Pi is about 3.14 and e is 2.71. A million is 1,000,000, right? It is 10:30."
    expected = ["Pi is about 3.14 and e is 2.71.", "A million is 1,000,000, right?", "It is 10:30."]
    assert split_clauses(text) == expected
    assert split_clauses("圆周率是3.14，对吗？") == ["圆周率是3.14，对吗？"]


def test_english_abbreviations() -> None:
    text = "Dr. Smith met Mr. Jones, e.g. at the U.S. embassy vs. the other one. Then they left."
    expected = ["Dr. Smith met Mr. Jones,", "e.g. at the U.S. embassy vs. the other one.", "Then they left."]
    assert split_clauses(text) == expected
    text = "Mrs. and Ms. Lee, i.e. J. K. Rowling, live on Main St. in town."
    assert split_clauses(text, first_min_chars=99) == [text]
    # "etc." continues before a lowercase word, ends the sentence before a capital.
    assert split_clauses("Apples etc. are fruit. We eat pears, plums, etc. Really.", first_min_chars=99) == [
        "Apples etc. are fruit.",
        "We eat pears, plums, etc.",
        "Really.",
    ]
    assert split_clauses("So do I. Then we left.") == ["So do I.", "Then we left."]


def test_french_abbreviations_and_typography() -> None:
    assert split_clauses("M. Dupont et Mme. Martin, p. ex. à Paris. Voilà !", first_min_chars=99) == [
        "M. Dupont et Mme. Martin, p. ex. à Paris.",
        "Voilà !",
    ]
    assert split_clauses("« Ça va ? » demanda-t-il. Oui ! Attention : il pleut.") == [
        "« Ça va ? »",
        "demanda-t-il.",
        "Oui !",
        "Attention : il pleut.",
    ]
    assert split_clauses("Ça va\u202f? Très bien\u00a0!") == ["Ça va\u202f?", "Très bien\u00a0!"]


def test_urls_and_emails_are_never_split() -> None:
    text = "Visit http://x.y/z?a=b or www.example.com. Mail a@b.fr! Thanks."
    assert split_clauses(text) == ["Visit http://x.y/z?a=b or www.example.com.", "Mail a@b.fr!", "Thanks."]


def test_ellipsis() -> None:
    assert split_clauses("Well... maybe later. Wait... No!") == ["Well... maybe later.", "Wait...", "No!"]
    expected = ["Hmm… je ne sais pas.", "Bon…", "On y va."]
    assert split_clauses("Hmm… je ne sais pas. Bon… On y va.") == expected


def test_emoji_stay_whole() -> None:
    text = "Family time 👨‍👩‍👧! Great job!👍🏽 See you 🇫🇷. Press 1️⃣ now."
    expected = ["Family time 👨‍👩‍👧!", "Great job!👍🏽", "See you 🇫🇷.", "Press 1️⃣ now."]
    assert split_clauses(text) == expected
    cjk = "我们一家人👨‍👩‍👧在公园里玩🇫🇷🇩🇪真开心👍🏽" * 4
    chunks = split_clauses(cjk, max_chars=10)
    assert "".join(chunks) == cjk
    assert all(c[0] not in "\u200d\ufe0f\U0001f3fd" and c[-1] != "\u200d" for c in chunks)
    assert all(chunk.count("\U0001f1eb") == chunk.count("\U0001f1f7") for chunk in chunks)


def test_long_clauses_split_at_whitespace_or_anywhere_in_cjk() -> None:
    assert split_clauses("one two three four Dr. Smith", max_chars=22) == ["one two three four", "Dr. Smith"]
    chunks = split_clauses("word " * 100, max_chars=40)
    assert all(len(c) <= 40 for c in chunks) and set(" ".join(chunks).split()) == {"word"}
    expected = ["一二三四五六七八九十一二", "三四五六七八九十一二三四", "五六七八九十"]
    assert split_clauses("一二三四五六七八九十" * 3, max_chars=12) == expected
    # a French space before "?" or after "«" is never the forced cut
    chunks = split_clauses("« Vraiment ? » " * 10, max_chars=20)
    assert all(c.startswith("«") and c.endswith("»") for c in chunks)


def test_newlines_end_clauses() -> None:
    assert split_clauses("Shopping list\nApples\n\nPears") == ["Shopping list", "Apples", "Pears"]


def test_boundaries_wait_for_the_next_character() -> None:
    chunker = ClauseChunker()
    assert chunker.push("Pi is 3.") == []  # might become 3.14
    assert chunker.push("14. ") == []  # the next word decides (abbreviation? ellipsis?)
    assert chunker.push("Next") == ["Pi is 3.14."]
    assert chunker.flush() == ["Next"]
    assert chunker.push("你好！") == []  # a closing quote could still follow
    assert chunker.push("今天") == ["你好！"]
    assert chunker.push("」") == [] and chunker.flush() == ["今天」"]
    assert chunker.flush() == []


def test_strip_markdown() -> None:
    cases = {
        "**bold** and __bold__": "bold and bold",
        "*it* and _it_ but snake_case and 2 * 3 and 5*3": "it and it but snake_case and 2 * 3 and 5*3",
        "run `pip install` now": "run pip install now",
        "before\n```python\nprint('x. y')\n```\nafter": "before\nafter",
        "# Title\n## Sub": "Title\nSub",
        "- one\n* two\n+ three\n1. four\n2) five": "one\ntwo\nthree\nfour\nfive",
        "> quoted\n> > nested": "quoted\nnested",
        "see [the docs](http://a.b/(c)) ok": "see the docs ok",
        "look ![a cat](http://x/c.png) here": "look  here",
        "a\n\n---\n***\nb": "a\n\nb",
        "\\*literal\\* ~~gone~~ ~5 min": "*literal* gone ~5 min",
        "Plain text, 3.14 and U.S. — unchanged!": "Plain text, 3.14 and U.S. — unchanged!",
        "#hashtag 3.14 is pi\n42.\n-5 degrees": "#hashtag 3.14 is pi\n42.\n-5 degrees",
        "Keycaps *️⃣ #️⃣ 1️⃣": "Keycaps *️⃣ #️⃣ 1️⃣",
    }
    for text, expected in cases.items():
        assert strip_markdown(text) == expected, text
    assert [c.split() for c in split_clauses("| a | b |\n|---|:-:|\n| 1 | 2 |")] == [["a", "b"], ["1", "2"]]


def test_markdown_in_chunks() -> None:
    text = (
        "# Title\n\n- **First** item.\n- Second `code` item\n\n```python\nprint('x. y')\n```\n"
        "See [the docs. Really](http://a.b/c). Done!"
    )
    expected = ["Title", "First item.", "Second code item", "See the docs.", "Really.", "Done!"]
    assert split_clauses(text) == expected
    assert stream(text, list(range(len(text)))) == expected
    assert stream("*", [1]) == ["*"] and stream("**bold** ok.", [1]) == ["bold ok."]


def test_chunker_is_reusable_after_flush() -> None:
    chunker = ClauseChunker()
    chunker.push("```\ncode")
    assert chunker.flush() == []
    assert chunker.push("Hi, you there. ") == [] and chunker.flush() == ["Hi, you there."]


# ---------------------------------------------------------------- properties --

PROTECTED = [
    "3.14", "1,000", "Dr.", "Mr.", "Mrs.", "e.g.", "i.e.", "vs.", "U.S.", "M.", "Mme.", "p. ex.",
    "http://x.y/z?a=b", "www.example.com", "a@b.fr", "snake_case",
    "👨‍👩‍👧", "👍🏽", "🇫🇷", "1️⃣", "#️⃣", "🏳️‍🌈",
]  # fmt: skip
WORDS = [
    "hello", "world", "Paris", "The", "ça", "était", "très", "bien", "I", "on", "etc",
    "你好", "天气", "公园", "散步",
]  # fmt: skip
PUNCT = [
    ".", ",", "!", "?", ";", ":", "…", "...", " ?", " !", " »", "« ", '"',
    "。", "，", "！", "？", "、", "：", "」", "”",
]  # fmt: skip
CLOSERS = ["", "", "", "」", "”", ")", "»", "👍🏽"]
MARKDOWN = [
    "*", "**", "_", "__", "`", "```", "\n", "\n\n", "# ", "- ", "1. ", "> ",
    "[", "](", ")", "![", "|", "---", "\\", "~~",
]  # fmt: skip

plain_words = st.lists(
    st.one_of(
        st.sampled_from(WORDS + PROTECTED),
        st.builds("".join, st.tuples(*map(st.sampled_from, (WORDS, PUNCT, CLOSERS)))),
    ),
    max_size=60,
)
plain_text = st.builds(" ".join, plain_words)
markdown_text = st.one_of(
    st.builds("".join, st.lists(st.sampled_from(WORDS + PROTECTED + PUNCT + MARKDOWN + [" "] * 3))),
    st.text(max_size=120),
)
any_text = st.one_of(plain_text, markdown_text)
limits = st.tuples(st.integers(1, 20), st.integers(1, 40), st.integers(8, 60))  # first_min, min, max
sizes = st.sampled_from([{}, {"first_min_chars": 1, "min_chars": 5, "max_chars": 25}, {"max_chars": 60}])


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@PROPS
@given(text=any_text, cuts=st.lists(st.integers(0, 400), max_size=30), kwargs=sizes)
def test_streaming_invariance(text: str, cuts: list[int], kwargs: dict[str, int]) -> None:
    assert stream(text, [c % (len(text) + 1) for c in cuts], **kwargs) == split_clauses(text, **kwargs)


@PROPS
@given(text=any_text, kwargs=sizes)
def test_chunks_lose_nothing_and_are_never_empty(text: str, kwargs: dict[str, int]) -> None:
    chunks = split_clauses(text, **kwargs)
    assert squash("".join(chunks)) == squash(strip_markdown(text))
    assert all(c.strip() and c == c.strip() for c in chunks)


@PROPS
@given(text=plain_text)
def test_plain_text_is_not_markdown(text: str) -> None:
    assert strip_markdown(text) == text


@PROPS
@given(words=plain_words, token=st.sampled_from(PROTECTED), at=st.integers(0, 60), limits=limits)
def test_protected_tokens_are_never_split(words: list[str], token: str, at: int, limits: tuple[int, int, int]) -> None:
    words.insert(min(at, len(words)), token)
    chunks = split_clauses(
        " ".join(words), **dict(zip(("first_min_chars", "min_chars", "max_chars"), limits, strict=True))
    )
    assert any(token in chunk for chunk in chunks)


# A space after an abbreviation is never a cut, so "Dr. Mr. Ms. ..." chains are left out here.
unsplittable = [t for t in PROTECTED if not t.endswith(".")]
no_abbr = [w for w in WORDS if w != "etc"]
simple_words = st.lists(
    st.one_of(
        st.sampled_from(no_abbr + unsplittable),
        st.builds("".join, st.tuples(*map(st.sampled_from, (no_abbr, PUNCT, CLOSERS)))),
    ),
    max_size=60,
)


@PROPS
@given(words=simple_words, max_chars=st.integers(10, 80))
def test_chunks_respect_max_chars(words: list[str], max_chars: int) -> None:
    slack = max((len(w) for w in words), default=0) + 3  # one unsplittable token
    assert all(len(c) <= max_chars + slack for c in split_clauses(" ".join(words), max_chars=max_chars))


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_first_clause_word_limit_streams_the_same(data):
    """With the fast-first-clause option, any delta split still gives the same chunks."""
    text = data.draw(
        st.sampled_from(
            [
                "I'm so glad you're enjoying your day with me! I hope everything is going well.",
                "Dr. Smith lives at 3.14 Main Street near www.example.com and loves it, really.",
                "Well then, let us talk about the ocean and the whales that sing in it.",
                "我们今天去公园散步吧，天气很好。",
            ]
        )
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunker, got, last = ClauseChunker(first_max_words=6), [], 0
    for cut in cuts + [len(text)]:
        got += chunker.push(text[last:cut])
        last = cut
    got += chunker.flush()
    assert got == split_clauses(text, first_max_words=6)
    assert "".join(got).replace(" ", "") == text.replace(" ", "")
    first_words = got[0].split()
    assert len(first_words) <= 6 or any(c in got[0] for c in ",.!?，。")
