"""Who the companion is: our persona format (TOML), validated, and its system prompt.

The persona belongs to the user, not to a model: it is plain text in a file they can
read, edit, export and carry to any LLM. Character cards (cards.py) convert into it.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from voice_companion.companion import macros
from voice_companion.core.errors import PersonaError

TEXT_FIELDS = (
    "description",
    "personality",
    "speaking_style",
    "scenario",
    "greeting",
    "example_dialogue",
    "boundaries",
    "instructions",
    "language",
    "stt_language",
)
_QUOTED = re.compile(r'"[^"\n]+"|“[^”\n]+”|「[^」\n]+」')
# The system prompt's headings, in the persona's own language (a Chinese persona's
# prompt in English made 小雨 speak of herself in the third person and mix languages).
LABELS = {
    "en": (
        "Who you are: ",
        "Your personality: ",
        "How you speak: ",
        "The situation: ",
        "Boundaries you keep: ",
        "Also: ",
        "An example of how you talk (your own words are always new):",
    ),
    "zh": (
        "你是谁：",
        "你的性格：",
        "你说话的方式：",
        "情境：",
        "你的原则：",
        "另外：",
        "你说话的例子（每次都用自己的新话）：",
    ),
    "fr": (
        "Qui tu es : ",
        "Ta personnalité : ",
        "Ta façon de parler : ",
        "La situation : ",
        "Tes limites : ",
        "Aussi : ",
        "Un exemple de ta façon de parler (tes mots sont toujours nouveaux) :",
    ),
}


@dataclass
class PersonaVoice:
    """The voice it speaks with; None leaves the configured setting alone."""

    name: str = ""  # a Piper voice from `voice-companion models list`; "" = configured voice
    length_scale: float | None = None  # > 1 speaks slower
    noise_scale: float | None = None
    noise_w: float | None = None
    speaker_id: int | None = None


@dataclass
class LoreEntry:
    """World/lore knowledge (a character card's `character_book` entry)."""

    content: str
    keys: list[str] = field(default_factory=list)


@dataclass
class Persona:
    name: str
    description: str = ""
    personality: str = ""
    speaking_style: str = ""
    scenario: str = ""
    greeting: str = ""
    example_dialogue: str = ""
    boundaries: str = ""
    instructions: str = ""  # extra rules, e.g. a card's system_prompt
    language: str = ""  # "en", "zh", "fr"; "" = whatever the user speaks
    stt_language: str = ""  # what the user speaks to it: "" = detect per utterance
    voice: PersonaVoice = field(default_factory=PersonaVoice)
    voices: dict[str, str] = field(default_factory=dict)  # language -> voice: replies in zh speak with voices["zh"]
    lore: list[LoreEntry] = field(default_factory=list)

    def system_prompt(self, base: str, user: str = "") -> str:
        """`base` (prompts.PERSONA: how to talk aloud) made this persona's own; `user`:
        the user's name, if known (a card's {{user}}; "User" otherwise)."""
        fill = lambda text: macros.fill(text, self.name, user or "User").strip()  # noqa: E731
        parts = [base.replace("{name}", self.name)]
        labels = LABELS.get(self.language, LABELS["en"])
        for label, text in zip(
            labels[:6],
            (
                self.description,
                self.personality,
                self.speaking_style,
                self.scenario,
                self.boundaries,
                self.instructions,
            ),
            strict=True,
        ):
            if text.strip():
                parts.append(f"{label}{fill(text.strip())}")
        if self.example_dialogue.strip():
            parts.append(labels[6] + "\n" + fill(self.example_dialogue.strip()))
        return "\n\n".join(parts)

    @property
    def quotes_dialogue(self) -> bool:
        """Its greeting or examples quote the speech amid prose (`She smiles. "Hi!"`), as
        many roleplay cards do: then prose outside quotes is narration (narration.py)."""
        return any(
            _QUOTED.search(t) and len(_QUOTED.sub("", t).strip()) > 20 for t in (self.greeting, self.example_dialogue)
        )

    def greeting_for(self, user: str = "") -> str:
        """The greeting as it is said: macros filled ({{user}} left out when unknown)."""
        return macros.fill(self.greeting, self.name, user).strip()


def load_toml(path: str | Path) -> Persona:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PersonaError(f"persona file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{path.name} is not valid TOML ({exc})") from None
    return from_dict(data, path.name)


def from_dict(data: Any, source: str) -> Persona:
    """Check names and types; every problem is one line naming the field."""
    if not isinstance(data, dict):
        raise PersonaError(f"{source}: a persona must be a table of fields")
    known = {f.name for f in fields(Persona)}
    for key in data:
        if key not in known:
            raise PersonaError(f"{source}: unknown persona field {key!r}; known: {', '.join(sorted(known))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PersonaError(f"{source}: the persona needs a non-empty 'name'")
    texts = {k: _text(data, k, source) for k in TEXT_FIELDS if k in data}
    return Persona(
        name.strip(),
        **texts,
        voice=_voice(data.get("voice", {}), source),
        voices=_voices(data.get("voices", {}), source),
        lore=_lore(data.get("lore", []), source),
    )


def _text(data: dict, key: str, source: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise PersonaError(f"{source}: '{key}' must be text, got {type(value).__name__}")
    return value


def _voice(value: Any, source: str) -> PersonaVoice:
    if not isinstance(value, dict):
        raise PersonaError(f"{source}: 'voice' must be a table (name, length_scale, ...)")
    voice = PersonaVoice()
    types = {"name": str, "length_scale": float, "noise_scale": float, "noise_w": float, "speaker_id": int}
    for key, item in value.items():
        if key not in types:
            raise PersonaError(f"{source}: unknown voice setting {key!r}; known: {', '.join(types)}")
        if types[key] is float and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        if not isinstance(item, types[key]) or isinstance(item, bool):
            raise PersonaError(f"{source}: voice.{key} must be a {types[key].__name__}, got {item!r}")
        setattr(voice, key, item)
    return voice


def _voices(value: Any, source: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PersonaError(f"{source}: 'voices' must map a language to a voice name, e.g. zh = \"...\"")
    return dict(value)


def _lore(value: Any, source: str) -> list[LoreEntry]:
    if not isinstance(value, list):
        raise PersonaError(f"{source}: 'lore' must be a list of {{content, keys}} entries")
    entries = []
    for i, item in enumerate(value):
        content = item.get("content") if isinstance(item, dict) else None
        keys = item.get("keys", []) if isinstance(item, dict) else None
        if not isinstance(content, str) or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise PersonaError(f"{source}: lore entry {i} needs text 'content' and a list of text 'keys'")
        entries.append(LoreEntry(content, list(keys)))
    return entries


def to_dict(persona: Persona) -> dict[str, Any]:
    """Only what is set, in the order a person reads it."""
    out: dict[str, Any] = {"name": persona.name}
    out.update({k: getattr(persona, k) for k in TEXT_FIELDS if getattr(persona, k)})
    voice = {
        f.name: getattr(persona.voice, f.name)
        for f in fields(PersonaVoice)
        if getattr(persona.voice, f.name) not in (None, "")
    }
    if voice:
        out["voice"] = voice
    if persona.voices:
        out["voices"] = dict(persona.voices)
    if persona.lore:
        out["lore"] = [{"keys": e.keys, "content": e.content} for e in persona.lore]
    return out


def to_toml(persona: Persona) -> str:
    """Our TOML format; JSON string escapes are valid TOML basic strings."""
    data = to_dict(persona)
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    for table in ("voice", "voices"):
        if table in data:
            lines += ["", f"[{table}]"] + [f"{_key(k)} = {_value(v)}" for k, v in data[table].items()]
    for entry in data.get("lore", []):
        lines += ["", "[[lore]]", f"keys = {_value(entry['keys'])}", f"content = {_value(entry['content'])}"]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
