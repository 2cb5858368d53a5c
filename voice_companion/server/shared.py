"""What every call on a server shares: the engines, loaded once, and the companion's defaults.

Per-call state (conversation, playback, turn-taking) lives in each `Connection`;
the embedded LLM serialises its own requests, Whisper and Piper run concurrently.
"""

from __future__ import annotations

from dataclasses import dataclass
from voice_companion import engines
from voice_companion.config import Settings
from voice_companion.pipeline.llm import GenerationOptions, LLMBackend
from voice_companion.pipeline.session import SessionSettings
from voice_companion.pipeline.stt import SpeechToText
from voice_companion.pipeline.tts import TextToSpeech


@dataclass(frozen=True)
class Shared:
    stt: SpeechToText
    llm: LLMBackend
    tts: TextToSpeech  # the default voice; each call gets its own router over its pool
    options: GenerationOptions | None
    session_settings: SessionSettings
    system_prompt: str
    companion_name: str
    voice: str


def load_shared(settings: Settings) -> Shared:
    """Load all three engines now, so the first caller does not wait for them."""
    load_times = engines.LoadTimes()
    stt = engines.load_stt(settings, load_times)
    llm = engines.load_llm(settings, load_times)
    tts = engines.load_tts(settings, load_times)
    voice = engines.voice_name(settings)
    return Shared(stt, llm, tts, engines.generation_options(settings),
                  engines.session_settings(settings),
                  settings.companion.system_prompt(), settings.companion.name, voice)
