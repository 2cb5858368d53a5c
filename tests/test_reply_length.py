"""A reply ends at the first sentence end after `wrap_up_words` words, and the LLM's
stream is closed there (generation stops), however the text is cut into deltas."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from voice_companion.conversation.reply_length import spoken_words, wrapped_up

LONG = (
    "Oh, that sounds like a lovely plan for the weekend. "
    "I hope the weather stays kind to you both. "
    "Will you take the bicycle or the train to the coast? "
    "Either way, bring a warm jumper, the wind there can be sharp."
)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def run(deltas: list[str], words: int) -> tuple[str, int]:
    """The text that came through, and how many deltas the LLM was asked for."""
    asked = 0

    async def llm():
        nonlocal asked
        for delta in deltas:
            asked += 1
            yield delta

    async def consume() -> str:
        async with aclosing(llm()) as stream:
            return "".join([d async for d in wrapped_up(stream, words)])

    return asyncio.run(consume()), asked


@pytest.mark.parametrize("size", [1, 3, 7, 40, 1000])
def test_the_reply_ends_at_the_first_sentence_end_after_the_words(size):
    text, asked = run(pieces(LONG, size), 15)
    assert text == "Oh, that sounds like a lovely plan for the weekend. I hope the weather stays kind to you both."
    assert asked < len(pieces(LONG, size)) or size == 1000  # generation stopped there


def test_off_short_replies_and_numbers_pass_whole():
    assert run(pieces(LONG, 5), 0)[0] == LONG
    short = "Yes! Of course."
    assert run(pieces(short, 2), 25)[0] == short
    prices = "It was 3.5 euros. That is cheap for a coffee these days, really it is. And tasty."
    assert run(pieces(prices, 4), 6)[0] == "It was 3.5 euros. That is cheap for a coffee these days, really it is."


def test_chinese_counts_two_characters_a_word_and_needs_no_space():
    text = "你今天辛苦了。先喝杯热茶，好好休息一下吧。明天的事情明天再想，好吗？我一直都在这里陪着你。"
    assert spoken_words("你今天辛苦了。") == 3
    out, _ = run(list(text), 9)
    assert out == "你今天辛苦了。先喝杯热茶，好好休息一下吧。"
