"""A companion, not a help desk: card macros filled, stage directions captioned but
never spoken, help-desk closers never said (issue 17)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np
import pytest
from fakes import FakeLLM

from voice_companion.companion import macros
from voice_companion.companion.cards import from_card
from voice_companion.companion.companion import open_companion
from voice_companion.companion.memory import context, greetings
from voice_companion.companion.memory.conversation import MemoryConversation
from voice_companion.companion.memory.sqlite_store import SQLiteMemoryStore
from voice_companion.conversation.file_reply import speak_reply
from voice_companion.conversation.narration import speakable
from voice_companion.conversation.reply_length import shaped
from voice_companion.core.config import Settings
from voice_companion.engines.llm import ChatMessage, ScriptedLine
from voice_companion.engines.tts import TextToSpeech

SERAPHINA = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seraphina",
        "description": "{{char}} is a gentle guardian of the forest who looks after {{user}}.",
        "personality": "caring, calm",
        "first_mes": (
            "*You wake with a start, the smell of pine all around.* "
            '"Oh, you\'re awake, {{user}}!" *She walks over, clasping your hands in hers.* '
            '"I am {{char}}. You are safe here."'
        ),
        "mes_example": '<START>\n{{user}}: "Where am I?"\n{{char}}: *smiles softly* "In my glade, dear."',
    },
}


class RecordingTTS(TextToSpeech):
    """The real voice, remembering every text it was asked to say."""

    def __init__(self, inner: TextToSpeech) -> None:
        self.inner, self.said = inner, []
        self.sample_rate = inner.sample_rate

    def synthesize(self, text):
        self.said.append(text)
        return self.inner.synthesize(text)


def test_macros_are_filled_and_unknown_ones_never_spoken():
    now = datetime(2026, 12, 2, 9, 30)
    assert macros.fill("Hi {{user}}, I am {{char}}!", "Seraphina", "Sam") == "Hi Sam, I am Seraphina!"
    assert macros.fill("Hi {{user}}, I am {{char}}!", "Seraphina") == "Hi, I am Seraphina!"
    assert macros.fill("{{USER}}, it is {{time}} on {{weekday}}.{{// a note}}", "Mia", "", now) == (
        "It is 09:30 on Wednesday."
    )
    assert macros.fill("<BOT> waves at <USER>. {{unknownthing}}Hello", "Mia", "Sam") == "Mia waves at Sam. Hello"
    assert macros.fill("{{random:tea,coffee}}", "Mia") in ("tea", "coffee")
    assert macros.name_in("The user's name is Sam") == "Sam" and macros.name_in("用户的名字是小明") == "小明"


def test_a_cards_greeting_and_prompt_use_the_users_name_from_memory(tmp_path):
    settings = Settings()
    settings.paths = settings.paths.__class__(**{**settings.paths.__dict__, "data_dir": tmp_path / "data"})
    companion = open_companion(settings)
    companion.persona = from_card(SERAPHINA, "seraphina.json")
    assert "{{" not in companion.greeting() and "Oh, you're awake!" in companion.greeting()
    companion.store.add_memory("fact", "The user's name is Sam", 1.0, 0.95, key="name")
    assert "Oh, you're awake, Sam!" in companion.greeting()
    prompt = companion.system_prompt(settings)
    assert "looks after Sam" in prompt and "{{" not in prompt and "<START>" not in prompt
    assert companion.persona.quotes_dialogue
    companion.close()


@pytest.mark.parametrize(
    ("text", "quoted", "spoken"),
    [
        ("*smiles* Hi there! (laughs softly) How are you?", False, "Hi there! How are you?"),
        ("你好呀（笑）今天怎么样？", False, "你好呀今天怎么样？"),
        ('You wake. She walks over. "Hello, I am Seraphina." She smiles.', True, "Hello, I am Seraphina."),
        ("Hello there, how are you today?", True, "Hello there, how are you today?"),  # no quotes: all speech
    ],
)
def test_stage_directions_are_not_spoken(text, quoted, spoken):
    assert speakable(text, quoted) == spoken


def test_the_greeting_speaks_only_the_dialogue_and_captions_show_the_action(tts):
    greeting = macros.fill(SERAPHINA["data"]["first_mes"], "Seraphina", "Sam")
    voice = RecordingTTS(tts)
    reply = asyncio.run(speak_reply(ScriptedLine(greeting), voice, [], quoted_dialogue=True))
    said = " ".join(voice.said)
    assert "awake, Sam!" in said and "You are safe here." in said
    assert "wake with a start" not in said and "clasping" not in said and "*" not in said
    captions = " ".join(reply.clauses)  # each direction's clauses between asterisks
    assert captions.startswith("*You wake with a start,* *the smell of pine all around.*")
    assert "*She walks over,* *clasping your hands in hers.*" in captions
    seconds = len(reply.audio) / reply.sample_rate
    assert 1.0 < seconds < 6.0, seconds  # the dialogue only (the whole greeting read out: ~12 s)
    assert np.abs(reply.audio).max() > 1000


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ("Hello, Sam! How can I help you today?", "Hello, Sam!"),
        ("That sounds lovely. Let me know if there's anything else I can help you with today.", "That sounds lovely."),
        ("Oh no, I'm sorry. That must have been hard. What happened?", None),
        ("你好！今天过得怎么样？还有什么我可以帮你的吗？", "你好！今天过得怎么样？"),
        ("Ça va ? N'hésite pas à me demander.", "Ça va ?"),
        ("那是个好主意！如果你有任何具体的问题，请随时告诉我。", "那是个好主意！"),
        ("That's okay, let me know if you need anything else.", "That's okay,"),  # the small brain, eval run 1
        ("Call me tomorrow, if you have any time left.", None),
        ("Eh bien, n'hésite pas à me parler de ce qui te rend triste.", None),  # a friend's words, not a desk's
        ("Feel free to ask me anything.", None),  # the first sentence is always said
    ],
)
@pytest.mark.parametrize("piece", [1, 4, 200])
def test_help_desk_closers_are_never_said_and_generation_stops_there(reply, said, piece):
    asked: list[str] = []

    async def llm():
        for i in range(0, len(reply), piece):
            asked.append(reply[i : i + piece])
            yield reply[i : i + piece]

    async def run() -> str:
        return "".join([d async for d in shaped(llm(), 0)])

    assert asyncio.run(run()).strip() == (said or reply)
    if said and len(reply) - len(said) > 40 + piece:  # a closer long enough to stop before its end
        assert len("".join(asked)) < len(reply)  # generation stopped early


def test_a_live_reply_drops_the_closer_from_speech_and_history(tmp_path, tts):
    """Through the response path the voice, the captions and the text agree."""
    voice = RecordingTTS(tts)
    llm = FakeLLM("That sounds lovely. Let me know if there is anything else I can help you with.", 0.0, 0.0)
    reply = asyncio.run(speak_reply(llm, voice, [ChatMessage("user", "I baked bread today.")]))
    assert reply.text == "That sounds lovely." and " ".join(voice.said) == "That sounds lovely."


def test_the_reply_is_asked_in_the_language_of_each_message(tmp_path):
    """小雨 (Chinese) is reminded to answer English in English; back in Chinese after
    that, the change is said too; her own language needs no reminder."""
    conversation = MemoryConversation(SQLiteMemoryStore(tmp_path / "m.db"), "你是小雨。", context.Budget(1500))
    conversation.language = "zh"
    assert not conversation.prompt_for("你好呀", "zh")[-1].context
    english = conversation.prompt_for("How was your day?", "en")[-1]
    assert english.content == "How was your day?" and english.context == "(Answer in English.)"
    conversation.record("How was your day?", "It was lovely, thank you!")
    assert conversation.history[-2].context == "(Answer in English.)"  # kept as sent
    assert conversation.prompt_for("今天好累。", "zh")[-1].context == "（请用中文回答。）"
    conversation.close()


def test_the_next_greeting_is_written_at_the_end_in_the_companions_own_words(tmp_path):
    settings = Settings()
    settings.paths = settings.paths.__class__(**{**settings.paths.__dict__, "data_dir": tmp_path / "data"})
    companion = open_companion(settings)
    hello = companion.greeting()
    assert hello == "Hey, it's good to hear you! How are you doing?"  # nothing to pick up yet
    llm = FakeLLM("Hey Sam! How did the dinner with Lea go?", 0.0, 0.0)
    conversation = companion.conversation(settings, llm)
    conversation.record("I'm having dinner with my sister Lea tonight, at the Thai place.", "Oh, enjoy!")
    asyncio.run(conversation.save_for_next(llm))
    conversation.close()
    assert companion.greeting() == "Hey Sam! How did the dinner with Lea go?"
    assert any(a.startswith("(The call is ending.") for a in llm.asked)  # asked in the session's language
    companion.close()


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("Mia: Hey Sam! How did the dinner with Lea go?", "Hey Sam! How did the dinner with Lea go?"),
        ("Hey! You said I'm having dinner with my sister Lea tonight.", ""),  # a quote
        ("你好！晚饭怎么样？", ""),  # another language
        ("Hi " + "really " * 40 + "there.", ""),  # too long
    ],
)
def test_a_written_greeting_that_does_not_fit_is_dropped(written, kept):
    said = ["I'm having dinner with my sister Lea tonight, at the Thai place."]
    assert greetings.clean(written, "en", said) == kept


def test_a_sentence_that_begins_like_no_closer_goes_on_at_once():
    """The chunker closes "Oh no!" only when it sees the next letter: that letter must not
    wait for a closer check ("A" begins no closer), or the voice would start late."""
    events: list[str] = []

    async def llm():
        for delta in ("Oh no!", " A", "re you okay?"):
            events.append(f"llm {delta!r}")
            yield delta

    async def run() -> None:
        async for delta in shaped(llm(), 0):
            events.append(f"out {delta!r}")

    asyncio.run(run())
    assert events.index("out ' A'") < events.index("llm 're you okay?'")
