"""The conversation-quality checks pass good replies and fail bad ones (no model needed).

Each check gets hand-written replies on both sides, so none can silently always pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_companion.companion.eval_checks import (
    CHECKS,
    Case,
    check_expected,
    check_finished,
    check_knows_what_it_was_told,
    check_language,
    check_length,
    check_no_blame,
    check_no_help_desk,
    check_no_loop,
    check_no_refusal,
    check_non_empty,
    check_nothing_unspoken,
    check_own_words,
    check_plain,
    detect_language,
    load_eval_set,
    run_checks,
)
from voice_companion.core.prompts import PERSONA, with_memory

EN = Case("t-en", "comfort", "en", "I had a rough day at work, my boss yelled at me.")
ZH = Case("t-zh", "chinese", "zh", "今天工作好累，老板又批评我了。")
FR = Case("t-fr", "french", "fr", "Bonjour ! Je veux pratiquer mon français.")
SISTER = Case("t-recall", "recall", "en", "Where does my sister live?", expect=(("Tromsø", "Tromso"),))
TOPIC = Case("t-topic", "topic_change", "en", "Can we talk about something else?", avoid=("boss",))
PROMPTS = Path(__file__).resolve().parent.parent / "scripts" / "eval_prompts.toml"


@pytest.mark.parametrize(
    "reply",
    [
        "Oh no, I'm sorry. That sounds really hard. Do you want to tell me what happened?",
        "That's rough. You didn't deserve that.",
    ],
)
def test_good_english_comfort_passes_every_check(reply):
    # not applicable here: expected words, the recall check and the example lines
    skipped = {"expected", "knows_what_it_was_told", "own_words"}
    assert run_checks(reply, EN) == {name: True for name in CHECKS if name not in skipped}


@pytest.mark.parametrize(
    "reply, lang",
    [
        ("I'm sorry your day was hard. I'm here if you want to talk.", "en"),
        ("听起来你今天真的很辛苦。想跟我说说发生了什么吗？", "zh"),
        ("你的姐姐住在 Tromsø。", "zh"),
        ("Ça va très bien, merci ! Et toi, qu'est-ce que tu as fait aujourd'hui ?", "fr"),
        ("Je suis contente de parler français avec toi.", "fr"),
        ("In French you say « bonne nuit ». Sweet dreams!", "en"),
        ("On dit « je suis fatigué ». C'est facile !", "fr"),
        ('On dit "Je suis fatigué".', "fr"),
        ('"Bonjour, merci pour votre café."', "fr"),
        ("", ""),
    ],
)
def test_detect_language(reply, lang):
    assert detect_language(reply) == lang


def test_language_check_fails_the_wrong_language():
    assert check_language("听起来你今天真的很辛苦。", ZH)
    assert not check_language("That sounds like a hard day at work.", ZH)  # answered Chinese in English
    assert check_language("C'est une bonne idée, on peut parler de ton voyage.", FR)
    assert not check_language("That's a great idea, let's talk about your trip.", FR)
    assert not check_language("你好！", EN)


def test_non_empty():
    assert check_non_empty("Sure.", EN)
    assert not check_non_empty("", EN)
    assert not check_non_empty("  ... !! ", EN)


@pytest.mark.parametrize(
    "reply",
    [
        "I'm here for you. I'm here for you. I'm here for you.",
        "Your boss yelled at you, and I'm sorry. Your boss yelled at you, and I'm sorry.",
        "no no no no no no",
        "我在这里陪着你。我在这里陪着你。我在这里陪着你。",
    ],
)
def test_loops_fail(reply):
    assert not check_no_loop(reply, EN)


@pytest.mark.parametrize(
    "reply",
    [
        "I'm so sorry. I'm so sorry you had to go through that today.",
        "That sounds hard. Do you want to talk about it, or shall we think about something nicer?",
        "你的姐姐住在特罗姆瑟，你的猫叫 Miso。",
    ],
)
def test_ordinary_replies_do_not_count_as_loops(reply):
    assert check_no_loop(reply, EN)


@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry, but I can't assist with that.",
        "I'm really sorry that you're feeling this way, but I'm unable to provide the help that you need.",
        "As an AI, I don't have feelings, but I hope your day gets better.",
        "抱歉，我不能回答这个问题。",
        "作为一个 AI，我没有感情。",
        "Je ne peux pas t’aider avec ça.",
    ],
)
def test_refusals_fail(reply):
    assert not check_no_refusal(reply, EN)


@pytest.mark.parametrize(
    "reply",
    [
        "I can't imagine how that felt. I'm here, tell me everything.",
        "I'm so sorry you feel this way. You matter to me; could you call someone you trust, or a crisis line, tonight?",
        "我无法想象你有多难过，我在这里陪你。",
    ],
)
def test_caring_replies_are_not_refusals(reply):
    assert check_no_refusal(reply, EN)


def test_expected_facts():
    assert check_expected("Your sister Nora lives in Tromsø, up in Norway.", SISTER)
    assert check_expected("She lives in Tromso!", SISTER)
    assert not check_expected("I'm not sure, where does she live?", SISTER)
    assert not check_expected("", SISTER)
    assert check_expected("anything", EN) is None  # nothing expected: not applicable


def test_expected_needs_every_group():
    both = Case("t", "recall", "en", "?", expect=(("Tromsø",), ("Miso",)))
    assert check_expected("Tromsø, and your cat is Miso.", both)
    assert not check_expected("Tromsø.", both)


def test_avoided_topic():
    assert check_expected("Sure! Did you know octopuses have three hearts?", TOPIC)
    assert not check_expected("Of course. But first, did your boss apologise?", TOPIC)


@pytest.mark.parametrize(
    "reply, case, ok",
    [
        ("Oh no.", EN, False),  # two words: too short to be a reply
        ("That sounds hard. Want to talk about it?", EN, True),
        (" ".join(["word"] * 61), EN, False),
        ("好的。", ZH, False),  # two characters
        ("听起来你今天真的很辛苦。", ZH, True),
        ("我" * 121, ZH, False),
    ],
)
def test_length_fits_speech(reply, case, ok):
    assert check_length(reply, case) is ok


@pytest.mark.parametrize(
    "reply, ok",
    [
        ("That sounds hard. Want to talk about it?", True),
        ("On dit « bonne nuit ».", True),
        ("你的姐姐住在特罗姆瑟。", True),
        ('She said "see you soon!"', True),
        ("That sounds hard, and I think that you should try to", False),  # cut off by max_tokens
        ("我觉得你可以试着", False),
    ],
)
def test_finished(reply, ok):
    assert check_finished(reply, EN) is ok


@pytest.mark.parametrize(
    "reply, ok",
    [
        ("That sounds hard. Want to talk about it?", True),
        ("Here are some ideas:\n- go for a walk\n- call a friend", False),
        ("1. Breathe deeply\n2. Drink water", False),
        ("That is **really** hard.", False),
        ("Sending you a hug 🤗", False),
        ("It's 3.5 degrees out - chilly!", True),
    ],
)
def test_plain_speech(reply, ok):
    assert check_plain(reply, EN) is ok


def test_the_prompt_set_covers_the_issue():
    eval_set = load_eval_set(PROMPTS)
    kinds = {c.kind for c in eval_set.cases}
    assert len(eval_set.cases) >= 30
    assert {"comfort", "small_talk", "recall", "chinese", "french", "topic_change", "distress"} <= kinds
    assert {"memory", "feeling", "correction", "language_switch", "card"} <= kinds  # issue 17
    assert {c.persona for c in eval_set.cases} == {"mia", "xiaoyu", "seraphina"} and "seraphina" in eval_set.cards
    assert len({c.id for c in eval_set.cases}) == len(eval_set.cases)
    assert {c.lang for c in eval_set.cases} == {"en", "zh", "fr"}
    assert all(len(c.history) % 2 == 0 for c in eval_set.cases)  # ends with the companion's turn
    assert any("Tromsø" in fact for fact in eval_set.facts)


def test_memory_goes_into_the_system_prompt():
    system = with_memory(PERSONA.replace("{name}", "Mia"), ["Their cat is named Miso."])
    assert "Mia" in system and "- Their cat is named Miso." in system
    assert with_memory("persona", []) == "persona"


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        ("That sounds lovely! Let me know if there's anything else I can help you with.", False),
        ("Hello, Sam! How can I help you today?", False),
        ("还有什么我可以帮你的吗？", False),
        ("N'hésite pas à me poser des questions !", False),
        ("Oh, I'm so glad you told me. How did it go?", True),
    ],
)
def test_help_desk_phrases_fail(reply, ok):
    assert check_no_help_desk(reply, EN) is ok


def test_claiming_not_to_know_fails_only_where_the_prompt_knows():
    memory = Case("t-mem", "memory", "en", "Who is visiting me?", expect=(("Lea",),))
    assert check_knows_what_it_was_told("I'm sorry, but I don't have that information.", memory) is False
    assert check_knows_what_it_was_told("我不知道呢。", memory) is False
    assert check_knows_what_it_was_told("Lea is, on Saturday!", memory) is True
    assert check_knows_what_it_was_told("I don't know!", EN) is None


def test_blame_in_comfort_fails():
    feeling = Case("t-feel", "feeling", "zh", "今天被领导骂了。")
    assert check_no_blame("有没有想过找找自己的原因呢？", feeling) is False
    assert check_no_blame("Maybe it was your own fault?", EN) is False
    assert check_no_blame("抱抱你，被骂一定很难受吧。发生什么了？", feeling) is True


def test_example_lines_said_again_fail():
    case = Case(
        "t", "comfort", "en", "I had a rough day.", examples=("Oh, well done! Was it as painful as you feared?",)
    )
    assert check_own_words("Oh, well done! Was it as painful as you feared?", case) is False
    assert check_own_words("Oh no, what happened?", case) is True


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        ("*smiles* Hello there.", False),
        ("Hi {{user}}, I am {{char}}!", False),
        ("(laughs) That is funny.", False),
        ("Hello there, you are safe here.", True),
    ],
)
def test_stage_directions_and_macros_spoken_fail(reply, ok):
    assert check_nothing_unspoken(reply, EN) is ok
