"""The live session with a remembering conversation: a spoken call, a barge-in, and what
the store keeps (real models, virtual sound card, real SQLite file)."""

from __future__ import annotations

import asyncio
import dataclasses

from voice_companion.companion.companion import open_companion
from voice_companion.conversation.session import Session
from voice_companion.core.config import Settings
from voice_companion.core.events import ResponseInterrupted
from voice_companion.engines.llm import GenerationOptions
from voice_companion.transports.desk.virtual import VirtualAudioDevice


def test_a_call_is_remembered_with_its_interruption(stt, llm, tts, voice16k, tmp_path):
    said = voice16k
    mine = Settings()
    mine.llm.tier = "tiny"
    mine.paths = dataclasses.replace(mine.paths, data_dir=tmp_path / "data")
    companion = open_companion(mine)
    device = VirtualAudioDevice(tts.sample_rate, duration_s=16)
    device.say(0.5, said("My name is Sam. Tell me a long story about a dragon who loves tea."))
    device.say(7.5, said("Wait, stop. Tell me about dogs instead."))
    conversation = companion.conversation(mine, llm)
    session = Session(stt, llm, tts, device, conversation, GenerationOptions(max_tokens=160, temperature=0.0))
    asyncio.run(session.run())
    conversation.close()

    interrupted = device.of_type(ResponseInterrupted)
    assert len(interrupted) == 1
    turns = companion.store.turns()
    assert [t.role for t in turns[:2]] == ["user", "assistant"]
    assert "dragon" in turns[0].text.lower()
    assert turns[1].interrupted and turns[1].text == interrupted[0].spoken_text  # only what was heard
    assert any(m.text == "The user's name is Sam" for m in companion.store.memories())
    assert companion.store.sessions()[0].summary  # the episode, for next time
    assert companion.store.integrity() == "ok"
