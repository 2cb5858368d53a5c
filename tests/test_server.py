"""The phone server over real sockets on 127.0.0.1, with the real models.

One server (plain and TLS listeners) runs in a background thread for the whole
module; clients are `voice_companion.transports.websocket.client.RealtimeClient`, driven at real-time pace.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import run_cli
from servers import TOKEN, until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voice_companion.core.audio import read_audio, resample, to_int16
from voice_companion.core.config import TurnSettings
from voice_companion.core.errors import CompanionError
from voice_companion.transports.websocket.audio_frames import AudioFrame
from voice_companion.transports.websocket.client import RealtimeClient


def pcm(path, rate=16000) -> np.ndarray:
    clip = read_audio(path)
    return to_int16(resample(clip.samples, clip.sample_rate, rate))


async def stream(client: RealtimeClient, audio: np.ndarray, rate: int = 16000, silence_s: float = 30) -> None:
    """Say `audio` like a microphone: 20 ms frames at real-time pace, then silence."""
    block = rate // 50
    padded = np.concatenate([audio, np.zeros(int(silence_s * rate), dtype=np.int16)])
    start = time.perf_counter()
    for i in range(len(padded) // block):
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.perf_counter()))
        await client.send_audio(padded[i * block : (i + 1) * block])


def types(log: list) -> list[str]:
    return [e["type"] if isinstance(e, dict) else "audio" for e in log]


def check_reply_audio(log: list, response: dict, rate: int) -> np.ndarray:
    """The reply's frames: announced first, numbered 0..n-1, with its audio id, not silent."""
    frames = [f for f in log if isinstance(f, AudioFrame) and f.audio_id == response["audio_id"]]
    started = next(e for e in log if isinstance(e, dict) and e["type"] == "response.output_audio.started")
    assert started["format"] == {"type": "audio/pcm", "rate": rate}
    assert log.index(started) < log.index(frames[0])
    assert [f.seq for f in frames] == list(range(len(frames)))
    audio = np.concatenate([f.samples for f in frames])
    assert np.abs(audio).max() > 1000
    return audio


def test_spoken_and_typed_calls_at_once(server, spoken, tts):
    """A caller speaking (at 24 kHz) and a caller typing, served at the same time, kept apart."""

    async def speaker():
        async with await RealtimeClient.connect(server.url, TOKEN) as client:
            await client.send(
                {
                    "type": "session.update",
                    "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}},
                }
            )
            log: list = []
            updated = await until(client, "session.updated", log)
            assert updated["session"]["audio"]["input"]["format"]["rate"] == 24000
            talking = asyncio.create_task(stream(client, pcm(spoken("Hello Mia, how are you today?"), 24000), 24000))
            created = await until(client, "response.created", log)
            done = await until(client, "response.done", log, response_id=created["response_id"])
            talking.cancel()
            return client.session, log, created, done

    async def typist():
        async with await RealtimeClient.connect(server.url, TOKEN) as client:
            await client.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "What is your favourite colour?"}],
                    },
                }
            )
            await client.send({"type": "response.create"})
            log: list = []
            created = await until(client, "response.created", log)
            done = await until(client, "response.done", log, response_id=created["response_id"])
            return client.session, log, created, done

    async def both():
        return await asyncio.gather(speaker(), typist())

    (s_session, s_log, s_created, s_done), (t_session, t_log, t_created, t_done) = asyncio.run(both())
    for session in (s_session, t_session):
        assert session["protocol"] == 1 and session["audio"]["output"]["format"]["rate"] == tts.sample_rate
    order = types(s_log)
    for earlier, later in [
        ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"),
        ("input_audio_buffer.speech_stopped", "conversation.item.input_audio_transcription.completed"),
        ("conversation.item.input_audio_transcription.completed", "response.created"),
        ("response.created", "audio"),
        ("audio", "response.output_audio.done"),
        ("response.output_audio.done", "response.done"),
    ]:
        assert order.index(earlier) < order.index(later), order
    transcript = next(e for e in s_log if isinstance(e, dict) and e["type"].endswith("transcription.completed"))
    assert "how are you" in transcript["text"].lower()
    for log, created, done in [(s_log, s_created, s_done), (t_log, t_created, t_done)]:
        audio = check_reply_audio(log, created, tts.sample_rate)
        assert done["status"] == "completed" and done["text"]
        deltas = [e["delta"] for e in log if isinstance(e, dict) and e["type"] == "response.output_text.delta"]
        assert " ".join(deltas) == done["text"]
        metrics = next(e for e in log if isinstance(e, dict) and e["type"] == "metrics.turn")
        assert metrics["voice_to_voice_ms"] > 0
        audio_done = next(e for e in log if isinstance(e, dict) and e["type"] == "response.output_audio.done")
        assert abs(audio_done["audio_ms"] - 1000 * len(audio) / tts.sample_rate) < 1
    assert "conversation.item.created" in types(t_log) and "input_audio_buffer.speech_started" not in types(t_log)
    spoken_history = server.app.conversations.get(s_session["conversation_id"]).history
    typed_history = server.app.conversations.get(t_session["conversation_id"]).history
    assert [m.content for m in typed_history] == ["What is your favourite colour?", t_done["text"]]
    assert "how are you" in spoken_history[0].content.lower() and len(spoken_history) == 2

    async def reconnect():  # a dropped phone comes back to the same conversation
        async with await RealtimeClient.connect(server.url, TOKEN, conversation=t_session["conversation_id"]) as client:
            return client.session["conversation_id"]

    assert asyncio.run(reconnect()) == t_session["conversation_id"]


def test_barge_in_keeps_only_what_the_client_played(server, spoken):
    async def call():
        async with await RealtimeClient.connect(server.url, TOKEN) as client:
            log: list = []
            talking = asyncio.create_task(
                stream(client, pcm(spoken("Tell me a long story about a dragon who loves tea.")))
            )
            created = await until(client, "response.output_audio.started", log)
            # the companion talks past the point where speech would still join the turn
            # (resume_max_played_ms: a reply barely heard is withdrawn, not interrupted)
            await asyncio.sleep(TurnSettings.resume_max_played_ms / 1000 + 0.5)
            talking.cancel()
            talking = asyncio.create_task(stream(client, pcm(spoken("Wait, stop. Tell me about dogs instead."))))
            interrupted = await until(client, "response.interrupted", log)
            # the client flushes its player and reports what it really played
            await client.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": interrupted["response_id"],
                    "content_index": 0,
                    "audio_end_ms": 700,
                }
            )
            truncated = await until(client, "conversation.item.truncated", log)
            done = next(e for e in log if isinstance(e, dict) and e["type"] == "response.done")
            talking.cancel()
            return client.session, created, interrupted, truncated, done

    session, created, interrupted, truncated, done = asyncio.run(call())
    assert interrupted["response_id"] == created["response_id"] and interrupted["played_ms"] > 700
    assert done["status"] == "interrupted"
    assert truncated["item_id"] == created["response_id"] and truncated["audio_end_ms"] == 700
    heard = truncated["text"]
    assert len(heard) < len(interrupted["spoken_text"]) and interrupted["spoken_text"].startswith(heard)
    history = server.app.conversations.get(session["conversation_id"]).history
    assert history[1].role == "assistant" and history[1].content == heard and history[1].interrupted


def test_a_reply_cut_by_a_dropped_connection_is_told_after_the_reconnect(server):
    """Issue 20: the history keeps what the phone played, and the rest comes back as text."""

    async def call():
        async with await RealtimeClient.connect(server.url, TOKEN) as client:
            log: list = []
            await client.send_text("Tell me a long story about a dragon who loves tea.")
            await client.send({"type": "response.create"})
            created = await until(client, "response.output_audio.started", log)
            done = await until(client, "response.done", log)
            rate = created["format"]["rate"]
            sent_ms = sum(1000 * len(f.samples) / rate for f in log if isinstance(f, AudioFrame))
            assert sent_ms > 2000, "the story is long enough to be cut"
            await client.send({"type": "playback.mark", "response_id": created["response_id"], "played_ms": 900})
            await asyncio.sleep(0.3)
            client.ws.transport.abort()  # the Wi-Fi drops: no close frame
            return client.session["conversation_id"], created["response_id"], done["text"]

    conversation_id, response_id, said = asyncio.run(call())
    conversation = server.app.conversations.get(conversation_id)
    deadline = time.monotonic() + 10  # the server notices the drop, then keeps what was heard
    while not (conversation.history and conversation.history[-1].interrupted) and time.monotonic() < deadline:
        time.sleep(0.05)

    async def reconnect():
        async with await RealtimeClient.connect(server.url, TOKEN, conversation=conversation_id) as client:
            return client.session, await client.recv()

    session, missed = asyncio.run(reconnect())
    assert session["resumed"] and missed["type"] == "response.missed" and missed["response_id"] == response_id
    heard = conversation.history[-1]
    assert heard.content == missed["heard_text"] and len(heard.content) < len(said)
    assert said.startswith(heard.content) and said.endswith(missed["missed_text"])
    assert missed["missed_text"] and f"{heard.content} {missed['missed_text']}".strip() == said

    async def again():  # told once, not at every reconnect
        async with await RealtimeClient.connect(server.url, TOKEN, conversation=conversation_id) as client:
            await client.send({"type": "ping"})
            return await client.recv()

    assert asyncio.run(again())["type"] != "response.missed"


def test_no_or_wrong_token_is_rejected_before_any_model_work(server):
    started = server.app.sessions_started

    async def attempts():
        for token in (None, "wrong-token-0123456789abc", TOKEN[:-1]):
            with pytest.raises(CompanionError, match="401"):
                await RealtimeClient.connect(server.url, token)
        with pytest.raises(InvalidStatus) as info:
            await connect(server.url + "?token=nope")
        assert info.value.response.status_code == 401
        client = await RealtimeClient.connect(f"{server.url}?token={TOKEN}", None)  # browsers use the query
        await client.close()

    asyncio.run(attempts())
    assert server.app.sessions_started == started + 1
    page = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/").read().decode()
    assert "<html" in page.lower()
    for path in ("/../pyproject.toml", "/%2e%2e/protocol.py", "/missing.js"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}")
        assert info.value.code == 404


def test_tls_with_a_self_signed_certificate(server, certificate):
    url = f"wss://localhost:{server.tls_port}/v1/realtime"

    async def calls():
        client = await RealtimeClient.connect(url, TOKEN, cafile=certificate.cert)
        assert client.session["protocol"] == 1
        await client.close()
        with pytest.raises(CompanionError, match="cannot verify the certificate.*--tls-ca"):
            await RealtimeClient.connect(url, TOKEN)

    asyncio.run(calls())
    context = ssl.create_default_context(cafile=str(certificate.cert))
    with urllib.request.urlopen(f"https://localhost:{server.tls_port}/", context=context) as response:
        assert response.status == 200


def test_bad_input_gets_errors_and_every_session_keeps_working(server):
    async def attack():
        bystander = await RealtimeClient.connect(server.url, TOKEN)
        client = await RealtimeClient.connect(server.url, TOKEN)
        log: list = []
        bad = [
            ("{oops", "invalid_json"),
            ('{"type": "input_audio_buffer.commit"}', "unknown_event"),
            ('{"type": "ping", "pad": "' + "x" * 200_000 + '"}', "message_too_large"),
            (b"\x01\x02\x03", "invalid_audio"),
            (b"\x00" * 100_000, "message_too_large"),
            (
                '{"type": "session.update", "session": {"audio": {"input": {"format": {"rate": 1000000}}}}}',
                "invalid_sample_rate",
            ),
            ('{"type": "session.update", "session": {"audio": {"output": {"voice": "nobody"}}}}', "unknown_voice"),
            ('{"type": "conversation.item.truncate", "item_id": "resp_x", "audio_end_ms": 5}', "unknown_item"),
            ('{"type": "response.create"}', "no_input"),
        ]
        for frame, code in bad:
            await client.ws.send(frame)
            error = await until(client, "error", log, timeout=5)
            assert error["code"] == code, (frame[:40], error)
        for _ in range(300):  # a flood: 6 s of (silent) audio at once
            await client.send_audio(np.zeros(320, dtype=np.int16))
        assert (await until(client, "error", log, timeout=5))["code"] == "rate_limited"
        await client.send({"type": "ping", "event_id": "p1"})
        assert (await until(client, "pong", log, timeout=5))["event_id"] == "p1"
        await client.ws.send("x" * (2 << 20))  # over the socket's limit: closed with 1009
        with pytest.raises(ConnectionClosed) as info:
            await until(client, "never", log, timeout=5)
        assert info.value.rcvd.code == 1009
        spammer = await RealtimeClient.connect(server.url, TOKEN)
        for _ in range(60):
            await spammer.ws.send("garbage")
        with pytest.raises(ConnectionClosed) as info:
            await until(spammer, "never", [], timeout=5)
        assert info.value.rcvd.code == 4009
        await bystander.send({"type": "ping", "event_id": "still-here"})
        assert (await until(bystander, "pong", [], timeout=5))["event_id"] == "still-here"
        await bystander.close()

    asyncio.run(attack())
    deadline = time.monotonic() + 15  # the server finishes each hung-up call on its own time
    while len(server.app.connections) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.app.connections


def test_call_command_end_to_end(server, spoken, tmp_path):
    out = tmp_path / "answer.wav"
    result = run_cli(
        "call",
        "--url",
        f"http://127.0.0.1:{server.port}/#token={TOKEN}",
        "--input",
        str(spoken("What is the capital of France?")),
        "--output",
        str(out),
        "--json",
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "france" in data["transcript"].lower() and data["reply"] and data["status"] == "completed"
    assert 0 < data["v2v_ms"] < 30_000 and data["server_metrics"]["voice_to_voice_ms"] > 0, data
    clip = read_audio(out)
    assert clip.duration_s == pytest.approx(data["audio_s"], abs=0.01) and clip.duration_s > 0.5
    refused = run_cli("call", "--url", server.url, "--token", "nope-nope-nope-nope", "--input", str(spoken("Hi.")))
    assert refused.returncode == 2 and "401" in refused.stderr


def test_serve_command_with_stored_token_and_self_signed_certificate(spoken):
    refused = run_cli("serve", "--host", "0.0.0.0", "--no-token")
    assert refused.returncode == 2 and "needs a token" in refused.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "voice_companion", "serve", "--port", "0", "--json", "--tls-self-signed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        info = json.loads(process.stdout.readline())
        assert info["tls"] and info["url"] == f"{info['page']}#token={info['token']}"
        context = ssl.create_default_context(cafile=info["certificate"])
        assert urllib.request.urlopen(info["page"], context=context).status == 200

        async def hello():
            client = await RealtimeClient.connect(info["url"], None, cafile=info["certificate"])
            await client.close()
            return client.session

        assert asyncio.run(hello())["companion"]["name"]
        from voice_companion.core.config import Settings

        token_file = Settings().paths.data_dir / "server-token"
        assert token_file.read_text().strip() == info["token"] and token_file.stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("serve did not stop within 60 s of SIGTERM: " + process.communicate()[1][-1500:])
    assert process.returncode == 0
