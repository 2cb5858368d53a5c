"""The voices that come with the install, beside the Piper catalog: no download, ever.

Each fills a gap the bundled Piper voice (en_US-joe-medium, male, English only) leaves,
chosen by a TTS -> Whisper round trip (docs/benchmarks.md, "Offline voices"): Mandarin
from Kokoro-82M (engines/kokoro.py), a female English voice from Festival
(engines/festival.py). A downloaded Piper voice of the same language stays the upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voice_companion.core.errors import ModelNotAvailable
from voice_companion.engines import festival, kokoro
from voice_companion.engines.models import checks as model_checks
from voice_companion.engines.models import registry as models
from voice_companion.engines.tts import LoadedVoice


@dataclass(frozen=True)
class OfflineVoice:
    id: str
    language: str  # as the catalog writes it: "zh_CN"
    gender: str
    engine: str  # "kokoro" or "festival"
    name: str  # the engine's own name for it
    sample_rate: int
    install_hint: str

    @property
    def family(self) -> str:
        return self.language.split("_")[0]

    def size_mb(self) -> float:
        if self.engine == "kokoro":
            return round(models.get_spec(kokoro.MODEL).total_size / 1e6, 1)
        return 17.3  # festival, festvox-us-slt-hts and the lexicons they need, installed (dpkg)


VOICES: dict[str, OfflineVoice] = {
    **{
        voice: OfflineVoice(
            voice, "zh_CN", kokoro.GENDERS[voice], "kokoro", f"Kokoro {style}", kokoro.SAMPLE_RATE, kokoro.INSTALL_HINT
        )
        for voice, style in kokoro.VOICES.items()
    },
    **{
        voice: OfflineVoice(
            voice,
            "en_US",
            festival.GENDERS[voice],
            "festival",
            f"Festival {name}",
            festival.SAMPLE_RATE,
            festival.INSTALL_HINT,
        )
        for voice, name in festival.VOICES.items()
    },
}


def find(voice: str) -> OfflineVoice | None:
    return VOICES.get(voice)


def installed(voice: OfflineVoice, models_dir: Path) -> bool:
    """Its engine's packages (and, for Kokoro, the assembled model parts) are here."""
    if voice.engine == "festival":
        return festival.installed(voice.id)
    return kokoro.installed() and models.availability(models.get_spec(kokoro.MODEL), models_dir) is not None


def load(voice: OfflineVoice, models_dir: Path, threads: int) -> LoadedVoice:
    """The voice, loaded; ModelNotAvailable with the install hint when it is not here, a
    CompanionError naming the damaged file and the fix when its model does not load."""
    if voice.engine == "festival":
        return festival.FestivalTTS(voice.id)
    if not kokoro.installed():
        raise ModelNotAvailable(f"the offline voice {voice.id} is not installed: {voice.install_hint}")
    path = models.resolve(models.get_spec(kokoro.MODEL), models_dir)
    return model_checks.load_checked("Kokoro voice", path, lambda: kokoro.KokoroTTS(path, voice.id, threads=threads))
