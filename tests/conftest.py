"""Shared fixtures: one isolated VOICE_COMPANION_HOME and real models loaded once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

_HOME = tempfile.mkdtemp(prefix="vc-test-home-")
os.environ["VOICE_COMPANION_HOME"] = _HOME  # before any settings are built
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # a closed port: no test may reach the Hub
# The suite runs on the tiny LLM even where the 1.5B brain is installed (`--llm small`
# would be picked by "auto"): the CLI subprocesses read this config file.
(Path(_HOME) / "config").mkdir()
(Path(_HOME) / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')

DATA = Path(__file__).parent / "data"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


# Real models make a test slow (seconds to load, real-time pace): `pytest -m "not slow"`
# is the inner loop, where turn-taking is covered on virtual time (tests/fakes.py).
MODEL_FIXTURES = frozenset({"stt", "tts", "llm", "spoken", "user_voice", "voice16k", "small"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def settings():
    from voice_companion.core.config import Settings

    settings = Settings()
    settings.llm.tier = "tiny"  # fast and deterministic enough; never the 1.5B model
    return settings


@pytest.fixture(scope="session")
def stt(settings):
    from voice_companion.engines.loader import load_stt

    return load_stt(settings)


@pytest.fixture(scope="session")
def tts(settings):
    from voice_companion.engines.loader import load_tts

    return load_tts(settings)


@pytest.fixture(scope="session")
def llm(settings):
    from voice_companion.engines.loader import load_llm

    return load_llm(settings)


@pytest.fixture(scope="session")
def user_voice(settings):
    """The bundled Piper voice with its noise off: the same audio for a text every run."""
    from voice_companion.engines.loader import voice_path
    from voice_companion.engines.tts import PiperTTS, VoiceSettings

    return PiperTTS(voice_path(settings), VoiceSettings(noise_scale=0.0, noise_w=0.0))


@pytest.fixture(scope="session")
def spoken(user_voice, tmp_path_factory):
    """English speech as a file: `spoken("text")` -> path of a 22 kHz WAV."""
    from voice_companion.core.audio import write_wav

    folder = tmp_path_factory.mktemp("spoken")
    cache: dict[str, Path] = {}

    def make(text: str) -> Path:
        if text not in cache:
            cache[text] = write_wav(
                folder / f"{len(cache)}.wav", user_voice.synthesize_all(text), user_voice.sample_rate
            )
        return cache[text]

    return make


@pytest.fixture(scope="session")
def voice16k(user_voice):
    """English speech as samples for a microphone: `voice16k("text")` -> 16 kHz float32."""
    from voice_companion.core.audio import resample

    def make(text: str) -> np.ndarray:
        audio = user_voice.synthesize_all(text).astype(np.float32) / 32768
        return resample(audio, user_voice.sample_rate, 16000)

    return make


def small_settings():
    """Settings for the companion-grade brain; skips the test, naming the install command,
    where it is not installed."""
    from voice_companion.core.config import Settings
    from voice_companion.core.errors import ModelNotAvailable
    from voice_companion.engines.models import tiers

    settings = Settings()
    settings.llm.tier = "small"
    try:
        tiers.select(settings)
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))
    return settings


@pytest.fixture(scope="session")
def small():
    """The companion-grade brain and greedy options (the same answer every run)."""
    import dataclasses

    from voice_companion.engines.loader import generation_options, load_llm

    settings = small_settings()
    llm = load_llm(settings)
    yield llm, dataclasses.replace(generation_options(settings), temperature=0.0)
    llm.close()


def espeak(text: str, voice: str, path: Path) -> Path:
    """Synthesize speech with espeak-ng (Debian package) for languages Piper lacks here."""
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --dev installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", str(path), text], check=True)
    return path


def run_cli(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m voice_companion ARGS` as a user would, with this test home."""
    return subprocess.run(
        [sys.executable, "-m", "voice_companion", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with exit status 2 and one `error:` line, no traceback; returns
    that line (which must contain each of `needles`)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64))))) if len(samples) else 0.0


# -- the phone server (tests/servers.py has its helpers) --------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from voice_companion.transports.websocket import tls

    return tls.self_signed(tmp_path_factory.mktemp("tls"), ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module")
def server(stt, llm, tts, certificate):
    """One server (plain and TLS listeners) for a whole test module, with the real models."""
    from servers import TOKEN, ServerThread, make_shared

    from voice_companion.transports.websocket import tls
    from voice_companion.transports.websocket.app import App

    running = ServerThread(
        App(make_shared(stt, llm, tts, 14), TOKEN), tls.server_context(certificate.cert, certificate.key)
    )
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the whole run (tests/postgres.py), started on first use."""
    from postgres import Cluster

    cluster = Cluster(Path(tempfile.mkdtemp(prefix="vc-test-pg-"))).start()
    yield cluster.url
    cluster.stop()
