"""Security of the phone server over real sockets: Origin, input budgets, routes, secrets, files.

The server is the real `App` with the real models on 127.0.0.1 (as in test_server.py);
attacks are made the way a browser page or a script on the network would make them.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from servers import TOKEN, ServerThread, make_shared, until
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voice_companion.transports.websocket import limits, origin, tls
from voice_companion.transports.websocket.app import App
from voice_companion.transports.websocket.client import RealtimeClient


@pytest.fixture(scope="module")
def shared(stt, llm, tts):
    return make_shared(stt, llm, tts, 8)


@pytest.fixture(scope="module")
def server(shared, tmp_path_factory):
    cert = tls.self_signed(tmp_path_factory.mktemp("tls"), ["localhost", "127.0.0.1"])
    running = ServerThread(App(shared, TOKEN), tls.server_context(cert.cert, cert.key))
    yield running
    running.stop()


def handshake_status(url: str, headers: dict[str, str]) -> int:
    async def attempt() -> int:
        try:
            ws = await connect(url, additional_headers=headers, open_timeout=10)
        except InvalidStatus as exc:
            return exc.response.status_code
        await ws.close()
        return 101

    return asyncio.run(attempt())


def test_origin_rules():
    assert origin.origin_refusal(None, "192.168.1.20:8765", tls=True) is None  # scripts, apps
    assert origin.origin_refusal("https://192.168.1.20:8765", "192.168.1.20:8765", tls=True) is None
    assert origin.origin_refusal("https://example.com", "example.com:443", tls=True) is None
    for foreign in (
        "https://evil.example",
        "http://192.168.1.20:8765",
        "https://192.168.1.20:8766",
        "null",
        "file://",
        "https://192.168.1.20:8765.evil.example",
        "https://x@192.168.1.20:8765/p",
    ):
        assert origin.origin_refusal(foreign, "192.168.1.20:8765", tls=True), foreign
    assert origin.origin_refusal("https://proxy.example", "10.0.0.2:8765", True, ["https://proxy.example/"]) is None
    assert origin.origin_refusal(None, "evil.example:8765", False, loopback_only=True)  # DNS rebinding
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        assert origin.origin_refusal(None, host, False, loopback_only=True) is None, host


def test_foreign_origins_are_refused_before_any_session(server):
    started = server.app.sessions_started
    auth = {"Authorization": f"Bearer {TOKEN}"}
    own = f"http://127.0.0.1:{server.port}"
    assert handshake_status(server.url, {**auth, "Origin": "https://evil.example"}) == 403
    assert handshake_status(server.url, {**auth, "Origin": "null"}) == 403
    assert handshake_status(server.url, {"Origin": "https://evil.example"}) == 403  # no token either
    assert server.app.sessions_started == started
    assert handshake_status(server.url, {**auth, "Origin": own}) == 101  # the server's own page
    assert handshake_status(server.url, auth) == 101  # not a browser
    assert server.app.sessions_started == started + 2


def raw_handshake(port: int, host: str, headers: dict[str, str] | None = None) -> int:
    """A WebSocket upgrade by hand, so the Host header can lie (as after DNS rebinding)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", "/v1/realtime", skip_host=True)
    for name, value in {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_server_without_token_answers_only_to_localhost(shared, tmp_path):
    cert = tls.self_signed(tmp_path, ["localhost"])
    running = ServerThread(App(shared, None), tls.server_context(cert.cert, cert.key))
    try:
        assert raw_handshake(running.port, f"127.0.0.1:{running.port}") == 101
        assert raw_handshake(running.port, f"localhost:{running.port}") == 101
        assert raw_handshake(running.port, f"evil.example:{running.port}") == 403
        assert (
            raw_handshake(
                running.port, f"evil.example:{running.port}", {"Origin": f"http://evil.example:{running.port}"}
            )
            == 403
        )
    finally:
        running.stop()


def test_every_input_has_a_budget_and_the_call_survives_it(server):
    async def flood():
        client = await RealtimeClient.connect(server.url, TOKEN)
        log: list = []
        for i in range(limits.EVENT_BURST + 30):  # pings faster than 20 a second
            await client.send({"type": "ping", "event_id": f"p{i}"})
        assert (await until(client, "error", log, timeout=5))["code"] == "rate_limited"
        pongs = sum(1 for e in log if isinstance(e, dict) and e["type"] == "pong")
        assert pongs <= limits.EVENT_BURST + 2
        await asyncio.sleep(limits.EVENT_BURST / limits.MAX_EVENTS_PER_S)  # budget refills
        for _ in range(limits.UPDATE_BURST + 3):
            await client.send({"type": "session.update", "session": {"instructions": "Be brief."}})
        await until(client, "error", log, timeout=5, code="rate_limited")
        await asyncio.sleep(1.5)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x" * 3000}]}
        await client.send({"type": "conversation.item.create", "item": item})
        await client.send({"type": "conversation.item.create", "item": item, "event_id": "big"})
        error = await until(client, "error", log, timeout=5)
        assert error["code"] == "too_much_input" and error["event_id"] == "big"
        await asyncio.sleep(1.5)
        for _ in range(limits.FRAME_BURST + 50):  # tiny audio frames: many frames, little audio
            await client.send_audio(np.zeros(2, dtype=np.int16))
        await until(client, "error", log, timeout=5, code="rate_limited")
        await asyncio.sleep(limits.FRAME_BURST / limits.MAX_FRAMES_PER_S + 0.5)
        await client.send({"type": "ping", "event_id": "alive"})
        assert (await until(client, "pong", log, timeout=5))["event_id"] == "alive"
        await client.close()

    asyncio.run(flood())


ROUTES = [
    "/",
    "/index.html",
    "/v1/companion",
    "/v1/companion/picture",
    "/v1/realtime",
    "/v1/realtime?conversation=x",
    "/v1/history",
    "/history",
    "/memory",
    "/memory.db",
    "/api/memories",
    "/v1/sessions",
    "/data/companions/mia/memory.db",
    "/../data/server-token",
    "/%2e%2e/%2e%2e/server-token",
    "/server-token",
    "/config.toml",
    "/.env",
    "/v1/realtime/../../memory.db",
    "//etc/passwd",
]


def test_no_route_gives_history_memory_or_secrets_without_the_token(server):
    async def talk() -> str:
        async with await RealtimeClient.connect(server.url, TOKEN) as client:
            await client.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "My secret word is pelican."}],
                    },
                }
            )
            await client.send({"type": "response.create"})
            return (await until(client, "response.done", [], timeout=60))["text"]

    reply = asyncio.run(talk())
    for path in ROUTES:
        for method in ("GET", "POST", "HEAD"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            conn.close()
            assert "pelican" not in body and TOKEN not in body and (not reply or reply not in body), path
            if path.split("?")[0] == "/v1/realtime":
                assert response.status in (401, 426), (path, response.status)
            elif path.startswith("/v1/companion"):
                assert response.status == 401, (path, response.status)  # a persona is private too
            elif response.status == 200:
                assert path in ("/", "/index.html"), path


def test_who_it_calls_is_told_with_the_token_only(server):
    def get(path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    status, body = get("/v1/companion", bearer)
    assert status == 200 and json.loads(body) == {"name": "Mia", "picture": None}
    assert get("/v1/companion/picture", bearer)[0] == 404  # this one has no picture
    assert get("/v1/companion", {"Authorization": "Bearer " + "x" * 24})[0] == 401


def test_secrets_are_never_logged(server, caplog, tmp_path):
    """Token in the query and in the header, right and wrong; an API key sent to a dead LLM."""
    from voice_companion.core.errors import LLMError
    from voice_companion.engines.llm import ChatMessage
    from voice_companion.engines.llm_openai import OpenAICompatibleLLM

    api_key = "sk-test-SECRET-0123456789abcdef"
    caplog.set_level(logging.DEBUG)

    async def attempts():
        for token in (TOKEN, TOKEN + "x"):
            for how in ("query", "header"):
                url = f"{server.url}?token={token}" if how == "query" else server.url
                headers = {"Authorization": f"Bearer {token}"} if how == "header" else {}
                try:
                    ws = await connect(url, additional_headers=headers)
                    await ws.send('{"type": "ping"}')
                    await ws.recv()
                    await ws.close()
                except InvalidStatus:
                    pass
        llm = OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m", api_key=api_key, timeout_s=2)
        with pytest.raises(LLMError) as info:
            async for _ in llm.stream([ChatMessage("user", "hi")]):
                pass
        assert api_key not in str(info.value)

    asyncio.run(attempts())
    assert caplog.records, "nothing was logged: the capture does not work"
    assert TOKEN not in caplog.text and api_key not in caplog.text


@pytest.mark.slow  # `serve` loads the real models
def test_serve_makes_the_data_directory_owner_only(tmp_path):
    """A fresh home: `serve` writes the token and a TLS key into folders nobody else can read."""
    home = tmp_path / "home"
    env = {**os.environ, "VOICE_COMPANION_HOME": str(home)}
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[llm]\ntier = "tiny"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "voice_companion", "-q", "serve", "--port", "0", "--json", "--tls-self-signed"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout.readline()
    finally:
        process.terminate()
        process.wait(30)
    data = home / "data"
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        elif path.suffix != ".pem" or path.name.startswith("key"):
            assert mode == 0o600, (path, oct(mode))


def test_the_token_is_compared_in_constant_time(monkeypatch):
    """`hmac.compare_digest` (its time does not depend on where the strings differ) decides."""
    import hmac

    from voice_companion.transports.websocket import auth

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert auth.is_authorized(TOKEN, TOKEN) and not auth.is_authorized(TOKEN, TOKEN[:-1] + "x")
    assert not auth.is_authorized(TOKEN, "é" * 30)  # any text a query string can carry
    assert len(calls) == 3 and not auth.is_authorized(TOKEN, None)


def test_a_generated_token_never_begins_with_a_dash(monkeypatch):
    """`call --token -abc…` would read the token as an option: serve never makes one."""
    import secrets

    from voice_companion.transports.websocket import auth

    made = iter(["-starts-with-a-dash-0123456789abc", "fine-token-0123456789abcdefgh"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(made))
    assert auth.new_token() == "fine-token-0123456789abcdefgh"
