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

log = logging.getLogger(__name__)


def apply_persona(settings: Settings, persona: Persona, keep_voice: bool = False, keep_speed: bool = False) -> None:
    """The persona's name, voices and listening language into the settings, unless a
    flag or config.toml chose otherwise."""
    settings.companion.name = persona.name
    settings.tts.languages = {**persona.voices, **settings.tts.languages}
    settings.stt.language = settings.stt.language or persona.stt_language
    voice = persona.voice
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
    """A catalog voice that is installed here, or a registered one that is."""
    from voice_companion.engines.models import voice_catalog as catalog
    from voice_companion.engines.voices.install import installed_path

    known = catalog.find(name)
    if known is not None:
        return installed_path(known, models_dir) is not None
    spec = models.REGISTRY.get(name)
    return spec is not None and spec.kind == "tts" and models.availability(spec, models_dir) is not None


def voice_known(name: str) -> bool:
    """A voice of the catalog (installed or not), or an .onnx file that exists."""
    from voice_companion.engines.models import voice_catalog as catalog

    if name.endswith(".onnx"):
        return Path(name).expanduser().is_file()
    spec = models.REGISTRY.get(name)
    return catalog.find(name) is not None or (spec is not None and spec.kind == "tts")


def voice_problem(name: str, models_dir: Path) -> str | None:
    """None when this voice can speak here, else one line saying why not and what to do:
    a typo must not pass silently while the default voice speaks instead."""
    if not voice_known(name):
        return f"voice {name!r} is unknown; `voice-companion voices list` shows every voice"
    if not name.endswith(".onnx") and not voice_available(name, models_dir):
        return f"voice {name!r} is not installed; get it with: voice-companion voices download {name}"
    return None
