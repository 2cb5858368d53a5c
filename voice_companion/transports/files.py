"""Spoken exchanges through files: a question WAV in, an answer WAV out.

Used by `voice-companion reply`, the first-run demo and the benchmarks. The
engines (`engines.loader.Engines`) are loaded once, lazily, and shared by every exchange.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_companion.conversation.file_reply import speak_reply
from voice_companion.conversation.history import Conversation
from voice_companion.core.audio import load_for_stt, write_wav
from voice_companion.core.errors import AudioInputError
from voice_companion.core.language import guess_language
from voice_companion.engines import loader as engines
from voice_companion.engines.loader import Engines

DEMO_QUESTION = "Hi! I had a long day at work today. Can you cheer me up a little?"


@dataclass
class Exchange:
    transcript: str
    language: str
    reply: str
    output: Path
    sample_rate: int
    audio_s: float
    timings_ms: dict[str, float | None]
    warm_start: str = ""  # "restored" (saved state) or "prefilled" (cold)
    prefill_tokens: int | None = None  # prompt tokens the reply had to prefill (not cached)

    def as_dict(self) -> dict[str, Any]:
        return {
            "warm_start": self.warm_start,
            "prefill_tokens": self.prefill_tokens,
            "transcript": self.transcript,
            "language": self.language,
            "reply": self.reply,
            "output": str(self.output),
            "sample_rate": self.sample_rate,
            "audio_s": round(self.audio_s, 3),
            "timings_ms": {k: (round(v, 1) if v is not None else None) for k, v in self.timings_ms.items()},
        }


async def reply_to_file(
    eng: Engines, conversation: Conversation, input_path: str | Path, output_path: str | Path
) -> Exchange:
    """Transcribe the question, stream the reply through TTS, write the answer WAV.

    The prompt is made ready first (its saved state restored, else prefilled), as a
    live call does when it opens: `prompt_ready` says how long that took."""
    audio = load_for_stt(input_path)
    ready_start = time.perf_counter()
    warm = await conversation.warm_up(eng.llm)
    ready_ms = (time.perf_counter() - ready_start) * 1000
    transcript = await asyncio.to_thread(eng.stt.transcribe, audio, eng.settings.stt.language or None)
    if not transcript.text:
        raise AudioInputError(f"no speech recognised in {input_path}; speak closer to the microphone")
    messages = conversation.prompt_for(transcript.text, guess_language(transcript.text, transcript.language))
    options = engines.generation_options(eng.settings)
    eng.tts.follow_language(transcript.language)  # the answer's voice speaks the question's language
    spoken = await speak_reply(eng.llm, eng.tts, messages, options, conversation.quoted_dialogue)
    write_start = time.perf_counter()
    out = write_wav(output_path, spoken.audio, spoken.sample_rate)
    conversation.record(transcript.text, spoken.text)
    timings: dict[str, float | None] = {
        "prompt_ready": ready_ms,
        "stt": transcript.stt_ms,
        **spoken.timings_ms,
        "write": (time.perf_counter() - write_start) * 1000,
    }
    # time from the end of the question to the first reply sample, file-mode
    first_audio = spoken.timings_ms["tts_first_audio"] or spoken.timings_ms["reply_total"] or 0.0
    timings["voice_to_voice"] = transcript.stt_ms + first_audio
    return Exchange(
        transcript.text,
        transcript.language,
        spoken.text,
        out,
        spoken.sample_rate,
        len(spoken.audio) / spoken.sample_rate,
        timings,
        warm,
        eng.llm.last_usage.processed if eng.llm.last_usage else None,
    )


def write_demo_question(eng: Engines, path: str | Path, text: str = DEMO_QUESTION) -> Path:
    """Speak the sample question with the default voice so the demo needs no microphone."""
    return write_wav(path, eng.tts.synthesize_all(text), eng.tts.sample_rate)
