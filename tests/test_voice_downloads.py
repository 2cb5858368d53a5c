"""A phone gets the voice it lacks (issue 18): the `voice_missing` notice offers the
download when the server's computer can reach the voice hub (a local test hub here), the
call screen's `voice.download` installs it with progress, and the next reply in that
language speaks with it. Real server on 127.0.0.1, real Whisper, real test voices."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import espeak
from piper_test_voice import pitch_of
from servers import make_shared
from test_server import pcm, stream
from voice_hub import TestVoices
from voice_setup import ScriptedLLM, install_all, pitch

from voice_companion.engines.models import voice_catalog as catalog
from voice_companion.engines.voices.install import installed_path
from voice_companion.engines.voices.pool import VoicePool
from voice_companion.engines.voices.router import VoiceRouter
from voice_companion.transports.websocket import protocol as p
from voice_companion.transports.websocket.app import App
from voice_companion.transports.websocket.audio_frames import AudioFrame
from voice_companion.transports.websocket.client import RealtimeClient
from voice_companion.transports.websocket.voice_downloads import VoiceDownloads

A, FR = "en_US-test_a-x_low", "fr_FR-test-x_low"
PITCH = {A: pitch_of(300, 22050), FR: pitch_of(400, 22050)}  # tests/voice_hub.py
TOKEN = "test-token-downloads-0123456789"


def voices_in(audio: np.ndarray) -> set[str]:
    """Which test voice spoke each loud 4096-sample block (by its pitch)."""
    blocks = [audio[i : i + 4096] for i in range(0, len(audio) - 4096, 4096)]
    return {min(PITCH, key=lambda v: abs(PITCH[v] - pitch(b, 22050))) for b in blocks if np.abs(b).max() > 1000}


def test_voice_download_is_a_client_event_with_a_voice_id():
    assert p.parse_text('{"type": "voice.download", "voice": "fr_FR-siwis-medium", "event_id": "d1"}') == (
        p.VoiceDownload("d1", "fr_FR-siwis-medium")
    )
    for bad in (
        '{"type": "voice.download"}',
        '{"type": "voice.download", "voice": ""}',
        '{"type": "voice.download", "voice": 3}',
    ):
        with pytest.raises(p.ProtocolError) as caught:
            p.parse_text(bad)
        assert caught.value.code == "invalid_event"


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    voices = TestVoices.build(tmp_path / "hub").serve()
    monkeypatch.setenv(catalog.CATALOG_ENV, str(voices.catalog))
    yield voices
    voices.stop()


class Call:
    """One phone call to a real server: every message kept, French said on demand."""

    def __init__(self, client: RealtimeClient, french: np.ndarray) -> None:
        self.client, self.french, self.seen = client, french, []
        self.talking: asyncio.Task | None = None

    def say_french(self) -> None:
        if self.talking is not None:
            self.talking.cancel()
        self.talking = asyncio.create_task(stream(self.client, self.french, silence_s=20))

    async def until(self, kind: str, after: int = 0, timeout: float = 60) -> dict:
        """The first message of `kind` from index `after` on (waiting for it if need be)."""
        while True:
            found = [m for m in self.seen[after:] if isinstance(m, dict) and m["type"] == kind]
            if found:
                return found[0]
            self.seen.append(await asyncio.wait_for(self.client.recv(), timeout))


async def french_call(shared, french: np.ndarray, then) -> None:
    server = await App(shared, TOKEN).listen("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"
    try:
        async with await RealtimeClient.connect(url, TOKEN) as client:
            call = Call(client, french)
            call.say_french()
            try:
                await then(call)
            finally:
                if call.talking is not None:
                    call.talking.cancel()
    finally:
        server.close()
        await server.wait_closed()


def test_the_call_screen_downloads_the_missing_french_voice_to_the_computer(stt, hub, tmp_path):
    models = install_all(hub, tmp_path / "models", skip=(FR,))
    downloads = VoiceDownloads(models, hub.endpoint)
    router = VoiceRouter(VoicePool(models), A, {"fr": FR}, sample_rate=22050, offline=())
    shared = make_shared(stt, ScriptedLLM(), router, voice=A, downloads=downloads)
    french = pcm(espeak("Bonjour, je voudrais parler français avec toi ce soir.", "fr", tmp_path / "fr.wav"))

    async def then(call: Call) -> None:
        notice = await call.until("notice")
        assert notice["code"] == "voice_missing" and notice["details"]["language"] == "fr"
        offer = notice["details"]["download"]
        assert offer["voice"] == FR and offer["size_bytes"] > 0
        await call.client.send({"type": "voice.download", "voice": FR, "event_id": "d1"})
        done = await call.until("voice.download.done")
        assert done["event_id"] == "d1" and FR in done["voices"]
        progress = [m for m in call.seen if isinstance(m, dict) and m["type"] == "voice.download.progress"]
        assert progress and progress[-1]["received_bytes"] == progress[-1]["total_bytes"] == offer["size_bytes"]
        first = await call.until("response.done")  # the first French question's reply (the stand-in voice)
        # the user goes on in French: now the French voice answers
        start = len(call.seen)
        call.say_french()
        reply = await call.until("response.done", after=start)
        assert reply["response_id"] != first["response_id"] and reply["status"] == "completed"
        audio = np.concatenate([m.samples for m in call.seen[start:] if isinstance(m, AudioFrame)])
        assert voices_in(audio) == {FR}

    asyncio.run(french_call(shared, french, then))
    assert installed_path(catalog.get(FR), models) is not None


def test_no_offer_when_the_computer_cannot_reach_the_hub_and_a_failed_download_says_why(stt, hub, tmp_path):
    models = install_all(hub, tmp_path / "models", skip=(FR,))
    offline_here = VoiceDownloads(models, "http://127.0.0.1:9")  # nothing listens on port 9
    router = VoiceRouter(VoicePool(models), A, {"fr": FR}, sample_rate=22050, offline=())
    shared = make_shared(stt, ScriptedLLM(), router, voice=A, downloads=offline_here)
    french = pcm(espeak("Bonjour, je voudrais parler français avec toi ce soir.", "fr", tmp_path / "fr.wav"))

    async def then(call: Call) -> None:
        notice = await call.until("notice")
        assert notice["code"] == "voice_missing" and "download" not in notice["details"]
        await call.client.send({"type": "voice.download", "voice": FR, "event_id": "d2"})
        error = await call.until("error")
        assert error["code"] == "download_failed" and error["event_id"] == "d2"
        assert "cannot reach 127.0.0.1" in error["message"], error
        start = len(call.seen)
        await call.client.send({"type": "voice.download", "voice": "xx_XX-nobody-low", "event_id": "d3"})
        error = await call.until("error", after=start)
        assert error["code"] == "download_failed" and "unknown voice" in error["message"]

    asyncio.run(french_call(shared, french, then))
    assert installed_path(catalog.get(FR), models) is None


def test_downloads_turned_off_are_never_offered(tmp_path, hub):
    models = install_all(hub, tmp_path / "models", skip=(FR,))
    off = VoiceDownloads(models, hub.endpoint, allowed=False)
    assert asyncio.run(off.offer("fr", {})) is None
    on = VoiceDownloads(models, hub.endpoint)
    assert asyncio.run(on.offer("fr", {"fr": FR}))["voice"] == FR
    assert asyncio.run(on.offer("en", {})) is None  # an English voice is installed: nothing to offer
