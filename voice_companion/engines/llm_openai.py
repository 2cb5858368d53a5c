"""Any OpenAI-compatible chat server (Ollama, llama.cpp server, vLLM, LM Studio, hosted APIs).

Replies arrive as server-sent events from ``POST {base_url}/chat/completions``.
When the consumer stops iterating (barge-in), the generator's ``async with`` blocks
exit and close the HTTP connection, which is how the server learns to stop.

Only standard request fields are sent: hosted APIs such as OpenAI reject unknown
ones (``cache_prompt``, ``repeat_penalty``), and llama.cpp's server caches prompt
prefixes by default anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import httpx

from voice_companion.core.errors import ConfigError, LLMError, LLMStreamCut
from voice_companion.engines.llm import ChatMessage, CpuGate, GenerationOptions, LLMBase

log = logging.getLogger(__name__)


def _one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace so a server's text fits in a one-line error message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _connect_reason(exc: BaseException) -> str:
    """Why a connect failed; httpx's own text ("All connection attempts failed") hides it."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "unknown host name"
        cause = cause.__cause__ or cause.__context__
    return _one_line(str(exc), 120) or "connection failed"


class OpenAICompatibleLLM(LLMBase):
    """Streams chat replies from a server speaking the OpenAI chat-completions API."""

    def __init__(
        self, base_url: str, model: str, api_key: str = "", timeout_s: float = 30.0, name: str | None = None
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"llm.base_url must start with http:// or https:// (got {base_url!r})")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.name = name or f"openai:{model}"
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # Built once: loading CA certificates costs tens of ms per client.
        self._ssl = httpx.create_ssl_context()
        # One keep-alive client per event loop (an httpx pool belongs to the loop that made
        # it): the call's loop, and the memory worker's when it extracts facts.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        gate: CpuGate | None = None,  # the server has its own CPU: nothing to wait for
    ) -> AsyncGenerator[str, None]:
        opts = options or GenerationOptions()
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [m.as_dict() for m in messages],
            "stream": True,
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
        }
        if opts.stop:
            payload["stop"] = list(opts.stop)
        url = f"{self.base_url}/chat/completions"
        log.debug("POST %s model=%s messages=%d", url, self.model, len(messages))
        yielded = False
        try:
            # httpx's timeout bounds the connect and every single read, so a silent server
            # cannot hang us.
            async with self._client().stream("POST", url, json=payload, headers=self._headers) as response:
                await self._check_status(response)
                async for text in self._deltas(response):
                    yielded = True
                    yield text
        except httpx.TimeoutException as exc:
            raise LLMError(
                f"LLM server at {self.base_url} did not answer within {self.timeout_s:g} s; "
                f"is it overloaded or still loading the model? (raise llm.timeout_s)"
            ) from exc
        except httpx.ConnectError as exc:
            raise LLMError(
                f"cannot reach the LLM server at {self.base_url}: {_connect_reason(exc)}; "
                f"is it running? (set llm.base_url)",
                retryable=True,
            ) from exc
        except httpx.RemoteProtocolError as exc:
            if yielded:  # cut off mid-reply: the caller keeps what came (llm_resilient.py)
                raise LLMStreamCut(f"LLM server at {self.base_url} stopped mid-reply: {_one_line(str(exc))}") from exc
            raise LLMError(
                f"LLM server at {self.base_url} closed the connection: {_one_line(str(exc))}", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            retry = isinstance(exc, httpx.TransportError)
            raise LLMError(f"LLM request to {self.base_url} failed: {reason}", retryable=retry) from exc

    async def _check_status(self, response: httpx.Response) -> None:
        """Turn an HTTP error status into an LLMError that says which setting to fix."""
        status = response.status_code
        if status < 400:
            return
        detail = self._error_text((await response.aread()).decode("utf-8", "replace"))
        where = f"LLM server at {self.base_url}"
        if status in (401, 403):
            raise LLMError(
                f"{where} rejected the API key (HTTP {status}: {detail}); put a valid key in the "
                f"environment variable named by llm.api_key_env",
                status_code=status,
            )
        if status == 404:
            raise LLMError(
                f"{where} has no such model or path (HTTP 404: {detail}); check llm.remote_model "
                f"({self.model!r}) and llm.base_url (it usually ends in /v1)",
                status_code=status,
            )
        if status >= 500:
            raise LLMError(f"{where} failed (HTTP {status}): {detail}", retryable=True, status_code=status)
        raise LLMError(f"{where} refused the request (HTTP {status}): {detail}", status_code=status)

    @staticmethod
    def _error_text(text: str) -> str:
        """The server's own error message if it sent JSON, else a snippet of the body."""
        try:
            error = json.loads(text).get("error")
            message = error.get("message") if isinstance(error, dict) else error
            if message:
                return _one_line(str(message))
        except (ValueError, AttributeError):
            pass
        return _one_line(text) or "empty body"

    async def _deltas(self, response: httpx.Response) -> AsyncIterator[str]:
        """Parse the SSE stream; stop at [DONE] or a finish_reason."""
        if response.headers.get("content-type", "").startswith("application/json"):
            # A server that ignored stream=true answers with one complete message.
            choices = self._choices((await response.aread()).decode("utf-8", "replace"))
            content = (choices[0].get("message") or {}).get("content") if choices else None
            if content:
                yield content
            return
        seen_data = False
        async for line in response.aiter_lines():
            if line.startswith("error:"):  # llama.cpp's way of failing mid-stream
                raise LLMError(f"LLM server at {self.base_url} reported: {self._error_text(line[6:])}")
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event:/id: fields
            seen_data = True
            data = line[5:].strip()
            if data == "[DONE]":
                return
            choices = self._choices(data)
            if not choices:
                continue  # e.g. a final usage-only chunk
            text = (choices[0].get("delta") or {}).get("content")
            if text:
                yield text
            if choices[0].get("finish_reason"):
                return
        if not seen_data:
            raise LLMError(
                f"malformed stream from {self.base_url}: no 'data:' lines; is llm.base_url an OpenAI-compatible API?"
            )
        # Every OpenAI-compatible server ends a stream with [DONE] or a finish_reason; a
        # connection that just closes before either is a server that died mid-reply.
        raise LLMStreamCut(f"LLM server at {self.base_url} stopped mid-reply (no [DONE]); is it still running?")

    def _choices(self, data: str) -> list[dict[str, Any]]:
        """The `choices` of one JSON chunk; an error chunk or anything else raises LLMError."""
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "error" in obj:
            raise LLMError(f"LLM server at {self.base_url} reported: {self._error_text(data)}")
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise LLMError(
                f"malformed stream from {self.base_url}: expected JSON with 'choices', got {_one_line(data, 80)!r}"
            )
        return choices

    def _client(self) -> httpx.AsyncClient:
        """This event loop's client, made on first use; connections are kept alive."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = httpx.AsyncClient(timeout=self.timeout_s, verify=self._ssl)
        return client

    def close(self) -> None:
        """Drop the clients: their loops close their sockets (an open loop could not be
        awaited from here)."""
        self._clients.clear()
