"""The server: the web client at `/` and the realtime WebSocket at `/v1/realtime`,
on one port, over engines loaded once; `/v1/companion` (name and picture, so the call
screen shows who it calls before the call) and `/v1/companion/picture`.

Every request is judged in `process_request`, before the WebSocket handshake: a
missing or wrong token is answered 401 and no session, model call or conversation
is ever created for it.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import ssl
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from voice_companion.conversation.history import Conversation
from voice_companion.transports.websocket import auth, origin
from voice_companion.transports.websocket import protocol as p
from voice_companion.transports.websocket.connection import Connection
from voice_companion.transports.websocket.free_memory import release_free_memory
from voice_companion.transports.websocket.heard import MissedReply
from voice_companion.transports.websocket.shared import Shared
from voice_companion.transports.websocket.static import (
    WEB_DIR,
    file_response,
    json_response,
    static_response,
    text_response,
)

log = logging.getLogger(__name__)
KEEP_CONVERSATIONS = 64  # resumable after a reconnect, least recently used dropped first
SAVE_WHEN_STOPPING_S = 2.0  # a warm start saved at shutdown: enough when the prompt is read already


class Conversations:
    """Conversations by id, so a client that reconnects resumes where it left off.

    Every turn is saved as it happens, so dropping the least recently used one loses
    nothing: closing it only finishes its background learning and summary (in a
    thread: that may use the LLM for seconds)."""

    def __init__(self, new: Callable[[], Conversation], limit: int = KEEP_CONVERSATIONS) -> None:
        self.new, self.limit = new, limit
        self._by_id: collections.OrderedDict[str, Conversation] = collections.OrderedDict()
        self._missed: dict[str, tuple[MissedReply, ...]] = {}  # by conversation id, until it resumes

    def open(self, wanted: str | None) -> tuple[str, Conversation, bool]:
        """(id, conversation, resumed): the wanted one if it is still here, else a new one."""
        if wanted is not None and wanted in self._by_id:
            self._by_id.move_to_end(wanted)
            return wanted, self._by_id[wanted], True
        conversation_id = f"conv_{uuid.uuid4().hex}"
        self._by_id[conversation_id] = self.new()
        while len(self._by_id) > self.limit:
            dropped_id, dropped = self._by_id.popitem(last=False)
            self._missed.pop(dropped_id, None)
            threading.Thread(target=_close, args=(dropped,), daemon=True).start()
        return conversation_id, self._by_id[conversation_id], False

    def keep_missed(self, conversation_id: str, missed: list[MissedReply]) -> None:
        """What a dropped client did not hear, to be told when it comes back."""
        if missed and conversation_id in self._by_id:
            self._missed[conversation_id] = (*self._missed.get(conversation_id, ()), *missed)

    def take_missed(self, conversation_id: str) -> tuple[MissedReply, ...]:
        return self._missed.pop(conversation_id, ())

    def get(self, conversation_id: str) -> Conversation | None:
        return self._by_id.get(conversation_id)

    def close_all(self) -> None:
        while self._by_id:
            _close(self._by_id.popitem()[1])


def _close(conversation: Conversation) -> None:
    conversation.close()


class App:
    def __init__(
        self,
        shared: Shared,
        token: str | None,
        max_sessions: int = 16,
        web_dir: Path = WEB_DIR,
        allowed_origins: tuple[str, ...] = (),
    ) -> None:
        self.shared, self.token = shared, token
        self.allowed_origins = allowed_origins  # besides the server's own page (origin.py)
        self.max_sessions, self.web_dir = max_sessions, web_dir
        self.conversations = Conversations(shared.new_conversation)
        self.connections: set[Connection] = set()
        self.sessions_started = 0  # tests check that rejected clients never get one
        self.stopping = False  # set at shutdown: calls end without long work for the model

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> Server:
        """Start listening (port 0 picks a free one); the caller closes the returned server."""
        return await serve(
            self.handler,
            host,
            port,
            process_request=self.process_request,
            ssl=tls,
            max_size=p.MAX_MESSAGE_BYTES,
            max_queue=32,
            compression=None,
            close_timeout=3,
            ping_interval=20,
            ping_timeout=20,
        )

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path in (p.COMPANION_PATH, p.PICTURE_PATH):
            return self._companion_response(ws, request, path)
        if path != p.PATH:
            return static_response(self.web_dir, request.path)
        refusal = origin.origin_refusal(
            request.headers.get("Origin"),
            request.headers.get("Host"),
            ws.transport.get_extra_info("sslcontext") is not None,
            self.allowed_origins,
            loopback_only=self.token is None,
        )
        if refusal:
            log.warning("refused a WebSocket from %s: %s", _peer(ws), refusal)
            return text_response(http.HTTPStatus.FORBIDDEN, refusal + "\n")
        presented = auth.presented_token(request.path, request.headers.get("Authorization"))
        if not auth.is_authorized(self.token, presented):
            log.warning("rejected a client without a valid token from %s", _peer(ws))
            return text_response(http.HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        if len(self.connections) >= self.max_sessions:
            return text_response(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"the companion already has {self.max_sessions} calls; try again later\n",
            )
        return None  # go on with the WebSocket handshake

    def _companion_response(self, ws: ServerConnection, request: Request, path: str) -> Response:
        """Who the page calls: plain GETs, with the same token as a call (a persona is
        private too)."""
        presented = auth.presented_token(request.path, request.headers.get("Authorization"))
        if not auth.is_authorized(self.token, presented):
            log.warning("rejected a companion request without a valid token from %s", _peer(ws))
            return text_response(http.HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        picture = self.shared.picture
        if path == p.PICTURE_PATH:
            if picture is None:
                return text_response(http.HTTPStatus.NOT_FOUND, "this companion has no picture\n")
            return file_response(picture)
        return json_response({"name": self.shared.companion_name, "picture": p.PICTURE_PATH if picture else None})

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # set by the handshake, which is done before the handler runs
        query = parse_qs(urlsplit(ws.request.path).query)
        wanted = query.get("conversation", [None])[0]
        conversation_id, conversation, resumed = self.conversations.open(wanted)
        missed = self.conversations.take_missed(conversation_id) if resumed else ()
        connection = Connection(ws, self.shared, conversation, conversation_id, resumed, missed)
        self.connections.add(connection)
        self.sessions_started += 1
        log.info("%s connected from %s (%d live)", connection.id, _peer(ws), len(self.connections))
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self.conversations.keep_missed(conversation_id, connection.missed_now)
            log.info("%s left (%d live)", connection.id, len(self.connections))
            if not self.connections:  # the companion is idle: the next call (or start) opens warm
                await self._save_for_next(conversation)
            await asyncio.to_thread(release_free_memory)

    async def _save_for_next(self, conversation: Conversation) -> None:
        """At shutdown the save is given up when the model would first have to read much of
        the prompt (a call cut while it was being read): Ctrl+C must stop the server in
        seconds, and the next start prefills instead."""
        if not self.stopping:
            await conversation.save_for_next(self.shared.llm)
            return
        try:
            async with asyncio.timeout(SAVE_WHEN_STOPPING_S):  # no roll: it would need a long prefill
                await conversation.save_for_next(self.shared.llm, roll=False)
        except TimeoutError:
            log.info("no warm start saved: the prompt was not ready when the server stopped")

    def close(self) -> None:
        """At shutdown: finish every conversation's learning and close the companion."""
        self.conversations.close_all()
        self.shared.close()


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"
