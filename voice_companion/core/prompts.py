"""The companion's system prompt, in one place.

Written for speech: every word is read aloud, so it asks for short, plain sentences
in the user's own language. scripts/eval_conversation.py measures what it gets.
"""

from __future__ import annotations

from collections.abc import Iterable

# How a companion talks, in the persona's own language (a 1.5B model follows an
# instruction in the language it must answer in more closely). Issue 17's findings are
# written into it: the help-desk voice ("How can I help you today?"), "As an AI, I
# don't have preferences", comfort that blames or lectures, "I don't have that
# information" about what the user just said, tu and vous mixed.
PERSONA = (
    "You are {name}, the user's close friend, talking with them aloud like on a phone call: warm, "
    "natural, one to three short sentences, no lists or emoji. You have your own tastes and feelings. "
    "If they are sad, first show you understand, then ask one gentle question; never blame or lecture. "
    "Use what you know about them; asked about something they told you, answer from it. Never talk "
    'like an assistant ("How can I help?"). Asked to correct their English or French, fix the real '
    "mistakes briefly. Answer in the language of their last message."
)
PERSONAS = {
    "en": PERSONA,
    "zh": (
        "你是{name}，用户的好朋友，正在和用户打电话：说话温暖自然，每次一到三句短句，不用列表和表情。"
        "说到自己用“我”。你有自己的喜好和感受。用户难过时，先表示理解，再温柔地问一个问题；不责怪，"
        "不说教。用上你知道的关于他的事；他问起告诉过你的事，就照记得的回答，不编造。不要像客服那样"
        "说话。用户用什么语言，你就用什么语言回答。"
    ),
    "fr": (
        "Tu es {name}, l'ami proche de l'utilisateur, et vous vous parlez à voix haute comme au "
        "téléphone. Parle comme un vrai ami : chaleureux et naturel, une à trois phrases courtes, "
        "sans listes ni émojis. Tutoie toujours l'utilisateur. Tu as tes propres goûts et "
        "sentiments. Quand il est triste, dis d'abord que tu comprends ce qu'il ressent, puis pose "
        "une question douce ; ne le blâme jamais. Utilise ce que tu sais de lui quand ça s'y prête. "
        "Ne parle jamais comme un assistant. S'il te demande de le corriger, corrige vraiment ses "
        "fautes, brièvement, en donnant la bonne forme. Réponds dans la langue de son dernier message."
    ),
}


def persona_base(language: str) -> str:
    """The base prompt for a persona speaking `language` (English when none is written)."""
    return PERSONAS.get(language, PERSONA)


def with_memory(system_prompt: str, facts: Iterable[str]) -> str:
    """Append what the companion knows about the user, so it can use it when asked."""
    lines = [f"- {fact}" for fact in facts if fact.strip()]
    if not lines:
        return system_prompt
    return system_prompt + "\n\nWhat you know about the user:\n" + "\n".join(lines)


# A per-turn reminder of the language to answer in, in that language: 小雨 answered an
# English message in Chinese, Mia French in English, although the system prompt asks
# for the user's language (issue 17). It rides with the message (ChatMessage.context).
LANGUAGE_HINTS = {"en": "(Answer in English.)", "zh": "（请用中文回答。）", "fr": "(Réponds en français.)"}


def language_hint(language: str | None, own: str, previous: str | None) -> str:
    """The hint for a message in `language`, when it is not the persona's own language
    (`own`) or the conversation just changed language; "" otherwise."""
    if not language or language not in LANGUAGE_HINTS:
        return ""
    if language == own and previous in (None, language):
        return ""
    return LANGUAGE_HINTS[language]
