"""The embedded llama.cpp backend with the real bundled SmolLM2 model."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from voice_companion.errors import ModelNotAvailable
from voice_companion.pipeline.llm import ChatMessage, GenerationOptions
from voice_companion.pipeline.llm_llamacpp import LlamaCppLLM

PROMPT = [
    ChatMessage("system", "You are a friendly companion. Answer briefly."),
    ChatMessage("user", "Tell me something nice about cats."),
]


def test_streams_several_deltas(llm):
    async def collect():
        return [d async for d in llm.stream(PROMPT, GenerationOptions(max_tokens=40))]

    deltas = asyncio.run(collect())
    assert len(deltas) > 3
    assert "".join(deltas).strip()


def test_cancel_mid_stream_stops_generation_and_backend_stays_usable(llm):
    async def first_three():
        got = []
        start = time.perf_counter()
        async with aclosing(llm.stream(PROMPT, GenerationOptions(max_tokens=400))) as deltas:
            async for delta in deltas:
                got.append(delta)
                if len(got) == 3:
                    break
        return got, time.perf_counter() - start

    got, elapsed = asyncio.run(first_three())
    assert len(got) == 3
    # 400 tokens at ~70 tok/s would take ~6 s; cancelling must not wait for them.
    assert elapsed < 3.0
    again = asyncio.run(first_three())[0]
    assert len(again) == 3


def test_prefill_then_stream(llm):
    async def go():
        await llm.prefill(PROMPT[:1])
        return [d async for d in llm.stream(PROMPT, GenerationOptions(max_tokens=10))]

    assert "".join(asyncio.run(go())).strip()


def test_corrupt_model_file_gives_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 4096)
    with pytest.raises(ModelNotAvailable, match="corrupt or not a GGUF"):
        LlamaCppLLM(bad)


def test_missing_model_file_gives_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailable, match="not found"):
        LlamaCppLLM(tmp_path / "nothing.gguf")
