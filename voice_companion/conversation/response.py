"""One reply of the companion: LLM tokens → clauses → speech → the speaker.

A response may start speculatively, while the user is only pausing: it generates
and synthesises, but holds its audio until the session commits it (the turn really
ended) or cancels it (the user went on). It remembers which clause went out at
which sample, so after a barge-in the history keeps exactly what was heard.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from voice_companion.conversation.chunker import ClauseChunker
from voice_companion.conversation.narration import NarrationMarker, NarrationSplitter, has_words
from voice_companion.conversation.playback_buffer import PlaybackBuffer
from voice_companion.conversation.reply_length import shaped
from voice_companion.core.events import AudioChunk, Event, TextDelta
from voice_companion.engines.llm import ChatMessage, CpuGate, GenerationOptions, LLMBackend, PromptUsage
from voice_companion.engines.tts import TextToSpeech


@dataclass
class ClauseSpan:
    text: str
    start_ms: float  # position in this response's audio
    duration_ms: float


@dataclass
class Response:
    user_text: str
    messages: Sequence[ChatMessage]
    id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex[:12]}")
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    spans: list[ClauseSpan] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    llm_first_token_ms: float | None = None
    usage: PromptUsage | None = None  # what its prompt cost the LLM
    first_clause_ms: float | None = None
    tts_first_audio_ms: float | None = None
    generation_done: bool = False
    task: asyncio.Task[None] | None = None
    scripted: bool = False  # a fixed line (the greeting): spoken like a reply, never a turn
    recorded: bool = False  # in the history (as the message with this response's id)
    pending_resume: bool = False  # the user may still go on with the turn it answers
    retracted: bool = False  # they did: dropped as if never said

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.spans)

    @property
    def generated_text(self) -> str:
        """The model's own words, as generated: kept in the history so the next turn's
        prompt repeats them token for token and llama.cpp reuses its cache (the spoken
        clauses are normalised and would break the cached prefix)."""
        return "".join(self.text_parts).strip()

    def spoken_text(self, played_ms: float) -> str:
        """The clauses the user heard; a clause cut off midway keeps its heard words."""
        heard = []
        for span in self.spans:
            if span.start_ms >= played_ms:
                break
            if span.start_ms + span.duration_ms <= played_ms:
                heard.append(span.text)
            else:
                words = span.text.split()
                fraction = (played_ms - span.start_ms) / max(span.duration_ms, 1.0)
                heard.append(" ".join(words[: int(len(words) * fraction)]))
        return " ".join(h for h in heard if h).strip()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


async def run_response(
    response: Response,
    llm: LLMBackend,
    tts: TextToSpeech,
    playback: PlaybackBuffer,
    emit: Callable[[Event], Awaitable[None]],
    options: GenerationOptions | None = None,
    first_clause_max_words: int = 0,
    quoted_dialogue: bool = False,
) -> None:
    """Generate, synthesise clause by clause, and (once committed) enqueue for playback.
    Stage directions are captioned, not spoken (narration.py; `quoted_dialogue`: the
    persona's prose outside quotes is narration too)."""
    chunker = ClauseChunker(first_max_words=first_clause_max_words)
    marker, splitter = NarrationMarker(quoted_dialogue), NarrationSplitter()
    gate = CpuGate()
    position_ms = 0.0
    seq = 0

    async def speak(marked: str) -> None:
        nonlocal position_ms, seq
        clause, caption = splitter.split(marked)
        if not has_words(clause):  # a stage direction alone: shown, not said
            if caption:
                await response.committed.wait()
                response.spans.append(ClauseSpan(caption, position_ms, 0.0))
                await emit(TextDelta(response.id, caption))
            return
        first = response.first_clause_ms is None
        if first:
            response.first_clause_ms = response.elapsed_ms()
        gate.hold()  # llama.cpp and Piper slow each other badly when they share 2 cores
        try:
            audio = await asyncio.to_thread(tts.synthesize_all, clause)
        finally:
            gate.release()
        if first:
            response.tts_first_audio_ms = response.elapsed_ms()
        await response.committed.wait()  # speculative responses hold their audio here
        if not len(audio):  # no voice here reads its script (a notice said so): shown only
            response.spans.append(ClauseSpan(caption, position_ms, 0.0))
            await emit(TextDelta(response.id, caption))
            return
        duration = 1000 * len(audio) / tts.sample_rate
        response.spans.append(ClauseSpan(caption, position_ms, duration))
        position_ms += duration
        await emit(TextDelta(response.id, caption))
        playback.enqueue(response.id, audio)
        await emit(AudioChunk(response.id, seq, audio, tts.sample_rate))
        seq += 1

    options = options.for_prompt(response.messages) if options else None
    async with aclosing(llm.stream(response.messages, options, gate)) as deltas:
        async for delta in shaped(deltas, options.wrap_up_words if options else 0):
            if response.llm_first_token_ms is None:
                response.llm_first_token_ms = response.elapsed_ms()
            response.text_parts.append(delta)
            for clause in chunker.push(marker.feed(delta)):
                await speak(clause)
    response.usage = llm.last_usage
    for clause in chunker.push(marker.flush()) + chunker.flush():
        await speak(clause)
    await response.committed.wait()
    response.generation_done = True
