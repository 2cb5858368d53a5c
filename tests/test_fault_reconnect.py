"""Fault: the phone vanishes mid-reply (no close frame: the TCP connection is cut), then
reconnects to the same conversation. The question and the part of the reply that was
sent are in the history, marked as interrupted, and the call goes on from there."""

from __future__ import annotations

import asyncio
import time

import pytest
from servers import TOKEN, ServerThread, make_shared, until

from voice_companion.transports.websocket import tls
from voice_companion.transports.websocket.app import App
from voice_companion.transports.websocket.client import RealtimeClient


@pytest.fixture(scope="module")
def server(stt, llm, tts, tmp_path_factory):
    """Long replies (up to 60 tokens): the phone vanishes while the reply is still being written."""
    shared = make_shared(stt, llm, tts, 60)
    cert = tls.self_signed(tmp_path_factory.mktemp("tls"), ["localhost"])
    running = ServerThread(App(shared, TOKEN), tls.server_context(cert.cert, cert.key))
    yield running
    running.stop()


def typed(text: str) -> dict:
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


def test_a_client_that_vanishes_mid_reply_resumes_with_nothing_lost(server):
    question = "Tell me a long story about a dragon who loves tea."

    async def vanish() -> tuple[str, float]:
        client = await RealtimeClient.connect(server.url, TOKEN)
        log: list = []
        await client.send(typed(question))
        await client.send({"type": "response.create"})
        await until(client, "response.output_audio.started", log, timeout=60)
        await asyncio.sleep(0.3)
        client.ws.transport.abort()  # no close frame, no FIN handshake: the Wi-Fi is gone
        return client.session["conversation_id"], time.monotonic()

    conversation_id, gone_at = asyncio.run(vanish())
    conversation = server.app.conversations.get(conversation_id)
    while server.app.connections and time.monotonic() - gone_at < 15:  # the server notices, winds down
        time.sleep(0.1)
    assert not server.app.connections
    assert [m.role for m in conversation.history] == ["user", "assistant"]
    assert conversation.history[0].content == question
    kept = conversation.history[1].content
    assert conversation.history[1].interrupted and kept.strip(), kept

    async def come_back() -> tuple[dict, dict]:
        async with await RealtimeClient.connect(server.url, TOKEN, conversation=conversation_id) as client:
            await client.send(typed("Sorry, I lost you. Go on?"))
            await client.send({"type": "response.create"})
            return client.session, await until(client, "response.done", [], timeout=90)

    session, done = asyncio.run(come_back())
    assert session["conversation_id"] == conversation_id and done["status"] == "completed"
    contents = [m.content for m in conversation.history]
    assert contents[:2] == [question, kept] and contents[2] == "Sorry, I lost you. Go on?" and len(contents) == 4
