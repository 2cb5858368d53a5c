"""One call's voice: which voice speaks the next clause, swapped live or by language.

A `TextToSpeech` to the rest of the pipeline, with a fixed output rate (the call's
playback rate): a voice at another rate is resampled, so a swap never changes the
stream the speaker or the phone receives.

Which voice speaks: the one the user chose (`use`), unless the reply is in another
language than that voice's; then the persona's voice for that language, else any
installed voice of it, else the chosen voice after one notice. Inside a reply, a
clause in Chinese characters goes to the Chinese voice and a Latin-only clause of a
Chinese reply to the voice for its language, so mixed speech stays intelligible.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from voice_companion.core.audio import resample
from voice_companion.core.errors import CompanionError
from voice_companion.core.language import guess_language, has_han
from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.tts import TextToSpeech, VoiceControl, VoiceSettings, length_scale
from voice_companion.engines.voices import offline as offline_voices
from voice_companion.engines.voices.install import installed_path
from voice_companion.engines.voices.pool import VoicePool

log = logging.getLogger(__name__)
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "fr": "French"}
WARM_UP = {"zh": "你好。", "fr": "Bonjour.", "en": "Hello."}


class VoiceRouter(TextToSpeech, VoiceControl):
    """Each clause in a voice of its language, over a pool of loaded voices; the voice
    and speed can change mid-call."""

    def __init__(
        self,
        pool: VoicePool,
        voice: str,
        languages: dict[str, str] | None = None,
        settings: dict[str, VoiceSettings] | None = None,
        sample_rate: int | None = None,
        offline: tuple[str, ...] = tuple(offline_voices.VOICES),
    ) -> None:
        self.pool = pool
        self.offline = offline  # installed with the package: the last resort for their language
        self.active = voice  # what the user chose
        self.languages = {catalog.language_family(k): v for k, v in (languages or {}).items()}
        self.settings = dict(settings or {})
        self.sample_rate: int = sample_rate or pool.get(voice).sample_rate
        self.reply_voice = voice  # the voice for the current reply's language
        self._noticed: set[str] = set()
        self._warming: set[str] = set()  # voices being loaded ahead of a reply

    @property
    def voice_control(self) -> VoiceControl:
        return self

    def for_call(self) -> VoiceRouter:
        """Another call's router: same pool, defaults and output rate, its own choices."""
        return VoiceRouter(self.pool, self.active, self.languages, self.settings, self.sample_rate, self.offline)

    # -- choosing ----------------------------------------------------------------------

    def use(self, voice: str, settings: VoiceSettings | None = None) -> float:
        """Switch to `voice` from the next clause on; loads it first (blocking, so the
        clause after the switch never waits). Returns the load time (0 when loaded)."""
        loaded = self.pool.is_loaded(voice)
        self.pool.get(voice)
        self.active = self.reply_voice = voice
        if family := family_of(voice):
            self.languages[family] = voice
        if settings is not None:
            self.settings[voice] = settings
        return 0.0 if loaded else self.pool.load_s.get(voice, 0.0)

    def set_speed(self, speed: float, variation: float | None = None) -> None:
        """Speed (1.0 normal, 1.25 faster) and variation (1.0 the voice's own) of the active voice."""
        current = self.settings.get(self.active, VoiceSettings())
        changes: dict = {"length_scale": length_scale(speed)}
        if variation is not None:
            changes.update(noise_scale=VoiceSettings.noise_scale * variation, noise_w=VoiceSettings.noise_w * variation)
        self.settings[self.active] = replace(current, **changes)

    def follow_language(self, language: str | None) -> str | None:
        """The user spoke `language`: the reply's voice follows. Returns a notice the
        first time a language has no voice here."""
        family = catalog.language_family(language)
        voice, missing = self.voice_for(family)
        self.reply_voice = voice
        if missing and family not in self._noticed:
            self._noticed.add(family)
            wanted = self.languages.get(family) or next((v.id for v in catalog.for_language(family)), "")
            hint = f"; get one with: voice-companion voices download {wanted}" if wanted else ""
            name = LANGUAGE_NAMES.get(family, family)
            if family == "zh":  # another script: a stand-in voice would only make noise of it
                where = "; to hear them, run on the computer the companion runs on: voice-companion voices download"
                hint = f"{where} {wanted}" if wanted else ""
                notice = f"no {name} voice is installed: {name} replies are shown as text{hint}"
            else:
                notice = f"no {name} voice is installed, so {voice} speaks {name} replies{hint}"
            log.warning("%s", notice)
            return notice
        return None

    def prepare_language(self, language: str | None) -> None:
        """Load the voice of `language` in the background while the user is still talking:
        the first Chinese reply of a server run waited 4.4 s for Kokoro and its G2P to load
        (scripts/bench_turns.py, zh02: first audio 5.0 s after the first clause was ready)."""
        family = catalog.language_family(language)
        if not family:
            return
        voice, missing = self.voice_for(family)
        if missing or voice in self._warming or self.pool.is_loaded(voice) or voice in self.pool.broken:
            return
        self._warming.add(voice)
        threading.Thread(target=self._warm, args=(voice, family), name=f"load voice {voice}", daemon=True).start()

    def _warm(self, voice: str, family: str) -> None:
        try:
            self.pool.get(voice).synthesize_all(WARM_UP.get(family, "Hello."))  # the G2P's first use loads it
        except CompanionError as exc:
            log.warning("%s", exc)  # said again, with what speaks instead, when the reply needs it
        finally:
            self._warming.discard(voice)  # evicted from the pool later, it may be loaded ahead again

    def voice_for(self, family: str) -> tuple[str, bool]:
        """(voice, True when none exists for that language and the active one stands in)."""
        if not family or family_of(self.active) in ("", family):
            return self.active, False
        mapped = self.languages.get(family)
        if mapped and self._usable(mapped):
            return mapped, False
        for voice in catalog.for_language(family):
            if self._usable(voice.id):
                return voice.id, False
        for offline in self.offline:  # a downloaded voice stays the upgrade
            if family_of(offline) == family and self._usable(offline):
                return offline, False
        return self.active, True

    def _usable(self, voice: str) -> bool:
        if self.pool.is_loaded(voice):
            return True
        if voice in self.pool.broken:
            return False
        bundled = offline_voices.find(voice)
        if bundled is not None:
            return offline_voices.installed(bundled, self.pool.models_dir)
        known = catalog.find(voice)
        return known is not None and installed_path(known, self.pool.models_dir) is not None

    def clause_voice(self, text: str) -> str:
        """Chinese characters to a Chinese voice; a Latin-only clause of a Chinese reply
        to the voice of its own language."""
        reply_family = family_of(self.reply_voice)
        if has_han(text):
            return self.reply_voice if reply_family == "zh" else self.voice_for("zh")[0]
        if reply_family == "zh" and len(_LATIN_WORD.findall(text)) >= 2:
            voice, missing = self.voice_for(guess_language(text) or "en")
            return self.reply_voice if missing else voice
        return self.reply_voice

    # -- speaking ----------------------------------------------------------------------

    def can_speak(self, text: str) -> bool:
        try:
            return self.pool.get(self.clause_voice(text)).can_speak(text)
        except CompanionError:
            return self.pool.get(self.active).can_speak(text)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        voice = self.clause_voice(text)
        try:
            tts = self.pool.get(voice)
        except CompanionError as exc:
            if voice == self.active:
                raise
            log.warning("%s; %s speaks instead", exc, self.active)  # the reply goes on
            voice, tts = self.active, self.pool.get(self.active)
        for chunk in tts.synthesize(text, self.settings.get(voice) or VoiceSettings()):
            if tts.sample_rate != self.sample_rate:
                chunk = np.clip(resample(chunk, tts.sample_rate, self.sample_rate), -32768, 32767).astype(np.int16)
            yield chunk

    def installed(self) -> list[str]:
        """The active voice, then every installed catalog voice, then the offline ones."""
        try:
            found = [v.id for v in catalog.voices() if installed_path(v, self.pool.models_dir) is not None]
        except CompanionError:  # no catalog: only the call's own voice
            found = []
        found += [v for v in self.offline if self._usable(v)]
        return [self.active, *(v for v in found if v != self.active)]


def family_of(voice: str) -> str:
    """The language family of a voice: from the catalog, else its Piper-style name."""
    known = catalog.find(voice) or offline_voices.find(voice)
    if known is not None:
        return known.family
    head = voice.rsplit("/", 1)[-1].split("-")[0]
    return catalog.language_family(head) if re.fullmatch(r"[a-z]{2,3}_[A-Z]{2}", head) else ""
