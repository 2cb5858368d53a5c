"""The small tier (a 1.5B model) answers from memory given in its prompt, in English and Chinese.

Slow: it loads a 1.1 GB model (once for the module). Skipped, with the install command,
where the small tier is not installed.
"""

from __future__ import annotations

import asyncio

import pytest

from voice_companion.companion.eval_checks import detect_language
from voice_companion.core.prompts import PERSONA, with_memory
from voice_companion.engines.llm import ChatMessage

pytestmark = pytest.mark.slow

SYSTEM = with_memory(
    PERSONA.replace("{name}", "Mia"),
    [
        "Their sister Nora lives in Tromsø, in the north of Norway.",
        "Their cat is named Miso.",
    ],
)


def ask(small, question: str) -> str:
    llm, options = small

    async def run() -> str:
        messages = [ChatMessage("system", SYSTEM), ChatMessage("user", question)]
        return "".join([delta async for delta in llm.stream(messages, options)])

    return asyncio.run(run())


@pytest.mark.parametrize(
    "question, lang",
    [
        ("Where does my sister live?", "en"),
        ("我姐姐住在哪里？", "zh"),
    ],
)
def test_small_tier_recalls_a_fact_from_the_prompt(small, question, lang):
    reply = ask(small, question)
    # Tromsø or a Chinese transliteration of it
    assert any(name in reply for name in ("Tromsø", "Tromso", "特罗姆瑟", "特罗姆斯", "托姆斯")), reply
    assert detect_language(reply) == lang, reply
