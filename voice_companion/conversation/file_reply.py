"""A whole reply without a live session: file mode (`reply`, the demo) and typed chat.

File mode runs the same `run_response` as a live call — LLM deltas through the
clause chunker into TTS, clause by clause — only committed from the start and
with its audio collected instead of played.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

import numpy as np

from voice_companion.conversation.playback_buffer import PlaybackBuffer
from voice_companion.conversation.reply_length import shaped
from voice_companion.conversation.response import Response, run_response
from voice_companion.core.events import AudioChunk, Event
from voice_companion.engines.llm import ChatMessage, GenerationOptions, LLMBackend
from voice_companion.engines.tts import TextToSpeech


@dataclass
class SpokenReply:
    text: str
    clauses: list[str]
    audio: np.ndarray  # int16 mono at `sample_rate`
    sample_rate: int
    timings_ms: dict[str, float | None]  # from the start of the reply


async def speak_reply(
    llm: LLMBackend,
    tts: TextToSpeech,
    messages: Sequence[ChatMessage],
    options: GenerationOptions | None = None,
    quoted_dialogue: bool = False,
) -> SpokenReply:
    """Stream the LLM's reply through the chunker into TTS and collect the audio."""
    chunks: list[np.ndarray] = []

    async def collect(event: Event) -> None:
        if isinstance(event, AudioChunk):
            chunks.append(event.samples)

    response = Response("", messages)
    response.committed.set()
    await run_response(
        response, llm, tts, PlaybackBuffer(tts.sample_rate), collect, options, quoted_dialogue=quoted_dialogue
    )
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    timings = {
        "llm_first_token": response.llm_first_token_ms,
        "first_clause": response.first_clause_ms,
        "tts_first_audio": response.tts_first_audio_ms,
        "reply_total": response.elapsed_ms(),
    }
    text = "".join(response.text_parts).strip()
    return SpokenReply(text, [s.text for s in response.spans], audio, tts.sample_rate, timings)


async def collect_reply(
    llm: LLMBackend, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
) -> str:
    """The whole reply as text (typed chat, no speech)."""
    options = options.for_prompt(messages) if options else None
    async with aclosing(llm.stream(messages, options)) as deltas:
        words = options.wrap_up_words if options else 0
        return "".join([delta async for delta in shaped(deltas, words)]).strip()
