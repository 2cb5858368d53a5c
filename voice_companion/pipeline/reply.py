"""One spoken exchange: transcript in, streamed reply text and audio out.

LLM deltas go through the clause chunker; each confirmed clause is synthesised
while the LLM keeps generating, so the first audio exists long before the reply
is complete. Timings are measured from the moment the question is known.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from voice_companion.pipeline.chunker import ClauseChunker
from voice_companion.pipeline.llm import ChatMessage, GenerationOptions, LLMBackend
from voice_companion.pipeline.tts import TextToSpeech

_END = object()


@dataclass
class ReplyTimings:
    """Milliseconds from the start of the reply (the transcript being ready)."""

    llm_first_token_ms: float | None = None
    first_clause_ms: float | None = None
    tts_first_audio_ms: float | None = None
    llm_done_ms: float | None = None
    total_ms: float | None = None


@dataclass
class SpokenReply:
    text: str
    clauses: list[str]
    audio: np.ndarray  # int16 mono at `sample_rate`
    sample_rate: int
    timings: ReplyTimings = field(default_factory=ReplyTimings)


async def speak_reply(
    llm: LLMBackend,
    tts: TextToSpeech,
    messages: Sequence[ChatMessage],
    options: GenerationOptions | None = None,
    on_clause: Callable[[str], None] | None = None,
) -> SpokenReply:
    """Stream the LLM's reply through the chunker into TTS, clause by clause."""
    start = time.perf_counter()
    timings = ReplyTimings()
    ms = lambda: (time.perf_counter() - start) * 1000  # noqa: E731
    clauses: asyncio.Queue[object] = asyncio.Queue()
    parts: list[str] = []

    async def generate() -> None:
        chunker = ClauseChunker()
        try:
            async with aclosing(llm.stream(messages, options)) as deltas:
                async for delta in deltas:
                    if timings.llm_first_token_ms is None:
                        timings.llm_first_token_ms = ms()
                    parts.append(delta)
                    for clause in chunker.push(delta):
                        await clauses.put(clause)
            for clause in chunker.flush():
                await clauses.put(clause)
            timings.llm_done_ms = ms()
        finally:
            await clauses.put(_END)

    producer = asyncio.create_task(generate())
    spoken: list[str] = []
    audio: list[np.ndarray] = []
    try:
        while (clause := await clauses.get()) is not _END:
            assert isinstance(clause, str)
            if timings.first_clause_ms is None:
                timings.first_clause_ms = ms()
            if on_clause:
                on_clause(clause)
            spoken.append(clause)
            chunks = await asyncio.to_thread(lambda c=clause: list(tts.synthesize(c)))
            if chunks and timings.tts_first_audio_ms is None:
                timings.tts_first_audio_ms = ms()
            audio.extend(chunks)
        await producer  # re-raises an LLM error
    finally:
        producer.cancel()
    timings.total_ms = ms()
    samples = np.concatenate(audio) if audio else np.zeros(0, dtype=np.int16)
    return SpokenReply("".join(parts).strip(), spoken, samples, tts.sample_rate, timings)


async def collect_reply(
    llm: LLMBackend, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
) -> str:
    """The whole reply as text (typed chat, no speech)."""
    async with aclosing(llm.stream(messages, options)) as deltas:
        return "".join([delta async for delta in deltas]).strip()
