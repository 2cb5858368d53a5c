"""Build the three engines from settings, resolving models and timing each load.

Models load once per process and are shared; load times go to stderr so a person
sees why the first call takes a moment.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voice_companion.core.config import Settings
from voice_companion.core.errors import ConfigError
from voice_companion.engines.llm import GenerationOptions, LLMBackend
from voice_companion.engines.models import checks as model_checks
from voice_companion.engines.models import registry as models
from voice_companion.engines.models import tiers
from voice_companion.engines.stt import SpeechToText, WhisperSTT
from voice_companion.engines.tts import PiperTTS, TextToSpeech, VoiceSettings

if TYPE_CHECKING:
    from voice_companion.engines.voices.pool import VoicePool
    from voice_companion.engines.voices.router import VoiceRouter

log = logging.getLogger(__name__)


@dataclass
class LoadTimes:
    seconds: dict[str, float] = field(default_factory=dict)


class Engines:
    """The process's three engines, each loaded on first use (or given ready) and then
    kept: one bundle for the desk, file mode and the server."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        stt: SpeechToText | None = None,
        llm: LLMBackend | None = None,
        tts: TextToSpeech | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.load_times = LoadTimes()
        self._stt, self._llm, self._tts = stt, llm, tts

    @property
    def stt(self) -> SpeechToText:
        if self._stt is None:
            self._stt = load_stt(self.settings, self.load_times)
        return self._stt

    @property
    def llm(self) -> LLMBackend:
        if self._llm is None:
            self._llm = load_llm(self.settings, self.load_times)
        return self._llm

    @property
    def tts(self) -> TextToSpeech:
        if self._tts is None:
            self._tts = load_tts(self.settings, self.load_times)
        return self._tts

    @property
    def loaded_llm(self) -> LLMBackend | None:
        """The LLM if it was loaded (None: nothing to save for it)."""
        return self._llm

    def load_all(self) -> Engines:
        """Load all three now (a server's first caller must not wait for them)."""
        _ = (self.stt, self.llm, self.tts)
        return self


def _timed(label: str, times: LoadTimes | None, build):
    start = time.perf_counter()
    log.info("loading %s …", label)
    engine = build()
    elapsed = time.perf_counter() - start
    log.info("loaded %s in %.2f s", label, elapsed)
    if times is not None:
        times.seconds[label] = elapsed
    return engine


def stt_model_dir(settings: Settings) -> Path:
    if settings.stt.model_path:
        return Path(settings.stt.model_path).expanduser()
    return models.resolve(models.get_spec(settings.stt.model), settings.paths.models_dir)


def load_stt(settings: Settings, times: LoadTimes | None = None) -> SpeechToText:
    s = settings.stt
    directory = model_checks.whisper_dir(stt_model_dir(settings))
    return _timed(
        "stt",
        times,
        lambda: model_checks.load_checked(
            "Whisper model", directory, lambda: WhisperSTT(directory, s.compute_type, s.threads, s.beam_size)
        ),
    )


def llm_model_path(settings: Settings) -> Path:
    return _model_path(settings, tiers.select(settings))


def _model_path(settings: Settings, choice: tiers.Choice) -> Path:
    if choice.model_path:
        return Path(choice.model_path).expanduser()
    return models.resolve(models.get_spec(choice.model), settings.paths.models_dir)


def generation_options(settings: Settings) -> GenerationOptions:
    return tiers.sampling(settings, tiers.select(settings))


# The LLM's context is this much larger than the prompt budget: a full window may wait
# for its successor's prefill to finish (memory_conversation.ROLL_GRACE, 25 % over).
CONTEXT_HEADROOM = 1.3
MAX_PARALLEL = 16  # llama.cpp slots: each holds a whole prompt window of KV cache


def load_llm(settings: Settings, times: LoadTimes | None = None) -> LLMBackend:
    """The LLM the tier (or an explicit model/backend) names; says which on stderr."""
    s = settings.llm
    choice = tiers.select(settings)
    log.info("%s", choice.notice)
    if choice.backend == "openai":
        from voice_companion.engines.llm_openai import OpenAICompatibleLLM
        from voice_companion.engines.llm_resilient import ResilientLLM

        return ResilientLLM(OpenAICompatibleLLM(s.base_url, s.remote_model, s.api_key(), s.timeout_s))
    from voice_companion.engines.llm_llamacpp import LlamaCppLLM

    if not 1 <= s.parallel <= MAX_PARALLEL:
        raise ConfigError(f"llm.parallel must be 1 to {MAX_PARALLEL} (replies generated at once), got {s.parallel}")
    path = _model_path(settings, choice)
    return _timed(
        "llm",
        times,
        lambda: LlamaCppLLM(
            path,
            int(tiers.context_tokens(settings, choice) * CONTEXT_HEADROOM),
            s.threads,
            defaults=generation_options(settings),
            generation_threads=s.generation_threads,
            prompt_cache_mib=s.prompt_cache_mib,
            parallel=s.parallel,
        ),
    )


def voice_path(settings: Settings) -> Path:
    if settings.tts.voice_path:
        return Path(settings.tts.voice_path).expanduser()
    return models.resolve(models.get_spec(settings.tts.voice), settings.paths.models_dir)


def load_tts(settings: Settings, times: LoadTimes | None = None, pool: VoicePool | None = None) -> VoiceRouter:
    """The configured voice, behind a router that can swap voices live and follow the
    conversation's language (`tts.languages`); voices load into `pool` (shared by calls)."""
    from voice_companion.engines.voices.router import VoiceRouter

    pool = pool or voice_pool(settings)
    name = voice_name(settings)
    if settings.tts.voice_path:
        path = model_checks.piper_voice(voice_path(settings))
        pool.add(
            name,
            _timed(
                "tts",
                times,
                lambda: model_checks.load_checked(
                    "Piper voice", path, lambda: PiperTTS(path, VoiceSettings.of(settings.tts), settings.tts.threads)
                ),
            ),
        )
    else:
        _timed("tts", times, lambda: pool.get(name))  # the pool names a damaged file and the fix
    return VoiceRouter(pool, name, settings.tts.languages, {name: VoiceSettings.of(settings.tts)})


def voice_pool(settings: Settings) -> VoicePool:
    from voice_companion.engines.voices.pool import VoicePool

    return VoicePool(settings.paths.models_dir, settings.tts.loaded_voices, settings.tts.threads)


def voice_name(settings: Settings) -> str:
    """What the voice is called in listings and the protocol (a file's stem for `voice_path`)."""
    return Path(settings.tts.voice_path).name.removesuffix(".onnx") if settings.tts.voice_path else settings.tts.voice
