"""What the server tests share: the app on 127.0.0.1 in a thread, its engines, the event wait.

One module instead of test modules importing each other's fixtures.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

from voice_companion.engines.llm import GenerationOptions
from voice_companion.engines.loader import Engines
from voice_companion.transports.websocket.app import App
from voice_companion.transports.websocket.client import RealtimeClient
from voice_companion.transports.websocket.shared import Shared

TOKEN = "test-token-0123456789abcdef"
SYSTEM = "You are Mia, a friendly companion. Answer in two or three sentences."
VOICE = "en_US-joe-medium"


def make_shared(stt: Any, llm: Any, tts: Any, max_tokens: int | None = None, **fields: Any) -> Shared:
    """The server's engines and defaults for a test: greedy replies of `max_tokens`."""
    if max_tokens:
        fields["options"] = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
    fields = {"system_prompt": SYSTEM, "voice": VOICE, **fields}
    return Shared(engines=Engines(stt=stt, llm=llm, tts=tts), **fields)


class ServerThread:
    """The app listening on 127.0.0.1 (a free port; with `tls_context` a TLS one too) in
    its own event loop thread."""

    def __init__(self, app: App, tls_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.plain = self.run(app.listen("127.0.0.1", 0))
        self.secure = self.run(app.listen("127.0.0.1", 0, tls_context)) if tls_context else None
        self.port = self.plain.sockets[0].getsockname()[1]
        self.tls_port = self.secure.sockets[0].getsockname()[1] if self.secure else None
        self.url = f"ws://127.0.0.1:{self.port}/v1/realtime"
        self.page = f"http://127.0.0.1:{self.port}/"

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def drop_calls(self) -> None:
        """Close every call from the server side, as a restart or a Wi-Fi drop would."""

        async def close_all() -> None:
            await asyncio.gather(*(c.ws.close(1012, "restarting") for c in list(self.app.connections)))

        self.run(close_all())

    def stop(self) -> None:
        for server in (self.plain, self.secure):
            if server is not None:
                server.close()
                self.run(server.wait_closed())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def until(client: RealtimeClient, kind: str, log: list, timeout: float = 60, **match: Any) -> dict:
    """Receive (logging everything) until an event of `kind` with `match` fields arrives."""

    async def receive() -> dict:
        while True:
            event = await client.recv()
            log.append(event)
            if isinstance(event, dict) and event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event

    return await asyncio.wait_for(receive(), timeout)
