"""Server bookkeeping without models or sockets: reply history and slow clients."""

from __future__ import annotations

import asyncio

import numpy as np
from fakes import FakeLLM, FakeSTT, FakeVoice
from servers import make_shared

from voice_companion.conversation.history import Conversation
from voice_companion.core.events import AudioChunk, ResponseDone, TextDelta
from voice_companion.core.messages import ChatMessage
from voice_companion.engines.tts import TextToSpeech
from voice_companion.transports.websocket import connection as conn_module
from voice_companion.transports.websocket.app import Conversations
from voice_companion.transports.websocket.connection import CLOSE_TOO_SLOW, Connection
from voice_companion.transports.websocket.heard import MissedReply, Replies

RATE = 1000  # 1 sample = 1 ms keeps the arithmetic readable


class SilentVoice(TextToSpeech):
    """A fixed voice that says nothing: the test is about the socket, not speech."""

    sample_rate = RATE

    def synthesize(self, text):
        return iter(())


def spoken_reply(replies: Replies, response_id: str, clauses: list[tuple[str, int]]) -> None:
    for seq, (text, ms) in enumerate(clauses):
        replies.observe(TextDelta(response_id, text))
        replies.observe(AudioChunk(response_id, seq, np.ones(ms, dtype=np.int16), RATE))


def test_truncate_keeps_what_the_client_played():
    conversation = Conversation("system")
    replies = Replies(conversation, RATE)
    spoken_reply(replies, "r1", [("Once upon a time,", 1000), ("a dragon drank tea.", 1000)])
    reply = replies.get("r1")
    reply.sent_samples = 2000
    conversation.record("Tell me a story", "Once upon a time, a dragon drank tea.", reply_id="r1")
    replies.observe(ResponseDone("r1", "Once upon a time, a dragon drank tea."))
    kept = replies.truncate("r1", 1500)
    assert kept == "Once upon a time, a dragon"
    assert conversation.history[-1].content == kept and conversation.history[-1].interrupted
    assert replies.truncate("r1", 5000) == "Once upon a time, a dragon drank tea."  # played it all after all


def test_truncate_before_the_reply_is_recorded_applies_later():
    conversation = Conversation("system")
    replies = Replies(conversation, RATE)
    spoken_reply(replies, "r1", [("Hello there.", 1000), ("How are you?", 1000)])
    replies.get("r1").sent_samples = 2000
    assert replies.truncate("r1", 1000) is None
    conversation.record("hi", "Hello there. How are you?", reply_id="r1")
    replies.observe(ResponseDone("r1", "Hello there. How are you?"))
    assert conversation.history[-1] == ChatMessage("assistant", "Hello there.", interrupted=True)


def test_hang_up_mid_reply_keeps_what_was_heard():
    conversation = Conversation("system")
    replies = Replies(conversation, RATE)
    spoken_reply(replies, "r1", [("First part.", 1000), ("Second part.", 1000)])
    reply = replies.get("r1")
    reply.sent_samples, reply.client_played_ms = 2000, 1000
    conversation.record("go on", "First part. Second part.", reply_id="r1")
    missed = replies.hang_up()
    assert conversation.history[-1] == ChatMessage("assistant", "First part.", interrupted=True)
    assert missed == [MissedReply("r1", "First part.", "Second part.")]  # told after the reconnect


def test_a_reply_heard_to_the_end_or_barged_in_is_not_missed():
    conversation = Conversation("system")
    replies = Replies(conversation, RATE)
    spoken_reply(replies, "r1", [("All of it.", 1000)])
    spoken_reply(replies, "r2", [("Cut by the user,", 1000), ("not by the network.", 1000)])
    replies.get("r1").sent_samples, replies.get("r1").client_played_ms = 1000, 1000
    replies.get("r2").sent_samples, replies.get("r2").client_played_ms = 2000, 500
    replies.observe(ResponseDone("r2", "Cut by the user,", status="interrupted"))
    assert replies.hang_up() == []


def test_missed_replies_wait_for_their_conversation_and_are_told_once():
    conversations = Conversations(lambda: Conversation("system"), limit=1)
    first_id, _, _ = conversations.open(None)
    missed = [MissedReply("r1", "First part.", "Second part.")]
    conversations.keep_missed(first_id, missed)
    assert conversations.take_missed(first_id) == tuple(missed)
    assert conversations.take_missed(first_id) == ()
    conversations.keep_missed(first_id, missed)
    conversations.open(None)  # the first conversation is dropped: so is what it missed
    conversations.keep_missed(first_id, missed)  # a late drop of a forgotten conversation
    assert conversations.take_missed(first_id) == ()


class StuckSocket:
    """A client that stopped reading: sends never complete."""

    def __init__(self) -> None:
        self.closed_with: tuple[int, str] | None = None

    async def send(self, message) -> None:
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def test_a_client_that_stops_reading_is_closed_not_buffered(monkeypatch):
    monkeypatch.setattr(conn_module, "OUTBOX_SIZE", 8)
    tts = SilentVoice()
    # stand-ins: with None, Engines would load the real Whisper and LLM (seconds)
    shared = make_shared(FakeSTT(FakeVoice()), FakeLLM(), tts, system_prompt="system", voice="voice")

    async def flood():
        ws = StuckSocket()
        connection = Connection(ws, shared, Conversation("system"), "conv_1")
        sender = asyncio.create_task(connection._sender())
        for i in range(20):
            connection._send({"type": "pong", "n": i})
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        sender.cancel()
        return ws.closed_with

    code, reason = asyncio.run(flood())
    assert code == CLOSE_TOO_SLOW and "too slow" in reason
