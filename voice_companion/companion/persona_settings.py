"""What a persona changes in the settings, and whether the voice it names can speak here.

A persona file or card may name a voice with a typo, or one not installed: that is one
warning line and the default voice speaks, never a silent substitution.
"""

from __future__ import annotations

import logging
from pathlib import Path

from voice_companion.companion.persona import Persona
from voice_companion.core.config import Settings
from voice_companion.engines.models import registry as models
from voice_companion.engines.voices import offline

log = logging.getLogger(__name__)


def apply_persona(settings: Settings, persona: Persona, keep_voice: bool = False, keep_speed: bool = False) -> None:
    """The persona's name, voices and listening language into the settings, unless a
    flag or config.toml chose otherwise."""
    settings.companion.name = persona.name
    settings.tts.languages = {**persona.voices, **settings.tts.languages}
    settings.stt.language = settings.stt.language or persona.stt_language
    voice = persona.voice
    # a voice chosen in config.toml (or by a flag) is the user's: the persona's does not replace it
    keep_voice = keep_voice or "tts.voice" in settings.origins or "tts.voice_path" in settings.origins
    usable = not voice.name or voice.name == settings.tts.voice
    if not usable and not keep_voice and not settings.tts.voice_path:
        problem = voice_problem(voice.name, settings.paths.models_dir)
        usable = problem is None
        if usable:
            settings.tts.voice = voice.name
        else:
            log.warning("warning: %s's %s; speaking with %s instead", persona.name, problem, settings.tts.voice)
    if not usable:
        return  # its speed and style settings belong to the voice it does not have
    for attr in ("length_scale", "noise_scale", "noise_w", "speaker_id"):
        value = getattr(voice, attr)
        if value is not None and not (attr == "length_scale" and keep_speed):
            setattr(settings.tts, attr, value)


def voice_available(name: str, models_dir: Path) -> bool:
    """A catalog voice that is installed here, an offline one, or a registered one."""
    from voice_companion.engines.models import voice_catalog as catalog
    from voice_companion.engines.voices.install import installed_path

    bundled = offline.find(name)
    if bundled is not None:
        return offline.installed(bundled, models_dir)
    known = catalog.find(name)
    if known is not None:
        return installed_path(known, models_dir) is not None
    spec = models.REGISTRY.get(name)
    return spec is not None and spec.kind == "tts" and models.availability(spec, models_dir) is not None


def voice_known(name: str) -> bool:
    """A voice of the catalog or of the install (here or not), or an .onnx file that exists."""
    from voice_companion.engines.models import voice_catalog as catalog

    if name.endswith(".onnx"):
        return Path(name).expanduser().is_file()
    spec = models.REGISTRY.get(name)
    known = catalog.find(name) is not None or offline.find(name) is not None
    return known or (spec is not None and spec.kind == "tts")


def voice_problem(name: str, models_dir: Path) -> str | None:
    """None when this voice can speak here, else one line saying why not and what to do:
    a typo must not pass silently while the default voice speaks instead."""
    if not voice_known(name):
        return f"voice {name!r} is unknown; `voice-companion voices list` shows every voice"
    if not name.endswith(".onnx") and not voice_available(name, models_dir):
        bundled = offline.find(name)
        if bundled is not None:
            return f"voice {name!r} ({bundled.gender}) is not installed here; get it with: {bundled.install_hint}"
        return f"voice {name!r} is not installed; get it with: voice-companion voices download {name}"
    return None


def speaking_voice(persona: Persona, settings: Settings) -> tuple[str, str | None]:
    """The voice this persona speaks its own language with here, and why it is not the
    voice it names (None: it is). Mia is written female: without her offline voice the
    male default speaks, and the user is told."""
    from voice_companion.engines.voices.pool import VoicePool
    from voice_companion.engines.voices.router import VoiceRouter

    name = persona.voice.name
    if not name or name == settings.tts.voice or settings.tts.voice_path:
        return name or settings.tts.voice, None
    problem = voice_problem(name, settings.paths.models_dir)
    if problem is None:
        return name, None
    languages = {**persona.voices, **settings.tts.languages}
    router = VoiceRouter(VoicePool(settings.paths.models_dir), settings.tts.voice, languages, sample_rate=22050)
    return router.voice_for(persona.language)[0] if persona.language else settings.tts.voice, problem


def voice_gender(name: str) -> str:
    """ "female", "male", "female, male" (several speakers), or "" when unknown."""
    from voice_companion.engines.models import voice_catalog as catalog

    known = catalog.find(name) or offline.find(name)
    return known.gender if known is not None else ""
