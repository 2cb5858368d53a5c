"""What every call on a server shares: the engines, loaded once, and the companion's defaults.

Per-call state (conversation, playback, turn-taking) lives in each `Connection`;
the embedded LLM serialises its own requests, Whisper and Piper run concurrently.
With a companion (the `serve` command always opens one), every call is a session of
the same persona and memory as the desk: turns are saved as they happen, and what
was learned on the phone is known at the desk, and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from voice_companion.companion.companion import Companion, open_companion
from voice_companion.conversation.history import Conversation
from voice_companion.conversation.session import SessionSettings, session_settings
from voice_companion.core.config import Settings
from voice_companion.engines import loader as engines
from voice_companion.engines.llm import GenerationOptions, LLMBackend
from voice_companion.engines.loader import Engines
from voice_companion.engines.stt import SpeechToText
from voice_companion.engines.tts import TextToSpeech
from voice_companion.transports.websocket.voice_downloads import VoiceDownloads


@dataclass(frozen=True, kw_only=True)
class Shared:
    engines: Engines
    options: GenerationOptions | None = None  # None: the LLM's own defaults
    session_settings: SessionSettings = field(default_factory=SessionSettings)
    system_prompt: str = ""  # a conversation without a companion (unit tests)
    companion_name: str = "Mia"
    voice: str = ""  # the default voice's name, as offered to phones
    companion: Companion | None = None  # None: a plain conversation without memory (unit tests)
    settings: Settings | None = None
    downloads: VoiceDownloads | None = None  # None: a phone is never offered a voice download

    @property
    def stt(self) -> SpeechToText:
        return self.engines.stt

    @property
    def llm(self) -> LLMBackend:
        return self.engines.llm

    @property
    def tts(self) -> TextToSpeech:
        """The default voice; each call gets its own choice over the loaded voices."""
        return self.engines.tts

    @property
    def picture(self) -> Path | None:
        """The companion's picture file (an imported card's), if it has one."""
        return self.companion.picture if self.companion is not None else None

    def new_conversation(self) -> Conversation:
        """A new call's conversation: a session of the companion, resuming where the last stopped."""
        if self.companion is None or self.settings is None:
            return Conversation(self.system_prompt)
        return self.companion.conversation(self.settings, self.llm)

    def close(self) -> None:
        if self.companion is not None:
            self.companion.close()


def load_shared(settings: Settings, companion_name: str | None = None) -> Shared:
    """Load all three engines now, so the first caller does not wait for them."""
    companion = open_companion(settings, companion_name)
    return Shared(
        engines=Engines(settings).load_all(),
        options=engines.generation_options(settings),
        session_settings=session_settings(settings),
        system_prompt=companion.system_prompt(settings),
        companion_name=companion.persona.name,
        voice=engines.voice_name(settings),
        companion=companion,
        settings=settings,
        downloads=VoiceDownloads(
            settings.paths.models_dir, settings.download.endpoint(), settings.download.phone_downloads
        ),
    )
