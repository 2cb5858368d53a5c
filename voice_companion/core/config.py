"""One typed settings object with every tunable and its default in one place.

Sources, later ones winning: the defaults below (a few, marked ``NOT_GIVEN``, come
from the chosen brain's tier in engines/models/tiers.py), the TOML file (the user
config dir's ``config.toml`` or ``--config PATH``), then command-line flags.
"Not given" is not "equal to the default": ``top_p = 0.9`` in the file is the
user's choice even where 0.9 is also a default (Pipecat's ``NOT_GIVEN`` is the
model), and ``Settings.origin`` says where each value came from (`config show`).
Secrets (API keys) are never stored in the file: the file names an environment
variable.

``VOICE_COMPANION_HOME`` relocates config, data and model cache together, which
is how tests and separate profiles stay apart.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import platformdirs

from voice_companion.core.errors import ConfigError

APP_NAME = "voice-companion"
HOME_ENV = "VOICE_COMPANION_HOME"


class NotGiven:
    """The type of NOT_GIVEN: nobody set this value; the brain's tier supplies it."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> NotGiven:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> NotGiven:
        return self


NOT_GIVEN: Final = NotGiven()
T = typing.TypeVar("T")


def given(value: T | NotGiven, otherwise: T) -> T:
    """`value` unless nobody gave it."""
    return otherwise if isinstance(value, NotGiven) else value


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @classmethod
    def from_environment(cls) -> Paths:
        home = os.environ.get(HOME_ENV)
        if home:
            root = Path(home).expanduser()
            return cls(root / "config", root / "data", root / "cache")
        return cls(
            Path(platformdirs.user_config_dir(APP_NAME)),
            Path(platformdirs.user_data_dir(APP_NAME)),
            Path(platformdirs.user_cache_dir(APP_NAME)),
        )


@dataclass
class STTSettings:
    model: str = "whisper-base"  # a name from `voice-companion models list`
    model_path: str = ""  # a CTranslate2 Whisper directory; overrides `model`
    language: str = ""  # "" = detect per utterance; else "en", "zh", "fr", ...
    compute_type: str = "int8"
    beam_size: int = 1  # greedy: same words on our samples, ~30% faster than 5
    threads: int = 2


@dataclass
class LLMSettings:
    # "auto" = the best installed of small/tiny; or "tiny", "small", "medium", "remote"
    # (voice_companion/engines/models/tiers.py: models, speed, sampling). The three below override it.
    tier: str = "auto"
    backend: str = "embedded"  # "embedded" (llama.cpp in-process) or "openai"
    model: str = ""  # embedded: a name from `voice-companion models list`
    model_path: str = ""  # embedded: a GGUF file; overrides `model`
    # The prompt window; not given = the tier's (tiers.py: 1024 tiny, 2048 small, sized
    # by the brain's prefill speed on 2 cores so a returning user's prompt never waits).
    context_tokens: int | NotGiven = NOT_GIVEN
    # Save the LLM state of the next session's prompt in the companion's folder and
    # restore it when a session opens; prepare window rolls in the background. false:
    # the prompt is prefilled when a session opens and a roll when it is due (baseline).
    warm_start: bool = True
    threads: int = 2  # prompt processing
    # Measured in live sessions on 2 cores: 1 generation thread made the first token
    # 2-3 s late (Piper and Whisper starve it), 2 gave 75-90 ms. See docs/benchmarks.md.
    generation_threads: int = 2
    # RAM for llama.cpp's cache of earlier prompts' KV state (embedded backend): a
    # caller whose prefix left the slot is restored from it instead of prefilled
    # again. ~23-28 KB per token for tiny/small: 256 MiB holds ~10,000 tokens, several
    # callers' prompts. llama.cpp's own default (8 GiB) let a server grow by gigabytes.
    prompt_cache_mib: int = 256
    # Replies generated at once (embedded backend: llama.cpp slots with continuous
    # batching, each caller keeping its own KV cache). Measured on 2 cores (bench_server,
    # tiny, 4 callers): v2v p50 / p95 2.4 / 3.6 s with 1, 5.5 / 9.2 s with 4 — the replies
    # share the same two cores; more may pay with many cores or a GPU.
    parallel: int = 1
    # Sampling: each value not given here is the tier's own (tiers.py; all tiers answer
    # in at most 80 tokens, about three spoken sentences: longer replies ramble).
    max_tokens: int | NotGiven = NOT_GIVEN
    temperature: float | NotGiven = NOT_GIVEN
    top_p: float | NotGiven = NOT_GIVEN
    repeat_penalty: float | NotGiven = NOT_GIVEN
    repeat_last_n: int | NotGiven = NOT_GIVEN
    wrap_up_words: int | NotGiven = NOT_GIVEN
    # OpenAI-compatible server (Ollama, llama.cpp server, vLLM, LM Studio, hosted APIs)
    base_url: str = "http://127.0.0.1:11434/v1"
    remote_model: str = "llama3.2"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    timeout_s: float = 30.0

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


@dataclass
class TTSSettings:
    voice: str = "en_US-joe-medium"  # a name from `voice-companion models list`
    voice_path: str = ""  # a Piper .onnx file (its .onnx.json beside it); overrides `voice`
    length_scale: float = 1.0  # > 1 speaks slower
    noise_scale: float = 0.667  # expressiveness
    noise_w: float = 0.8  # phoneme duration variation
    speaker_id: int = -1  # multi-speaker voices; -1 = the voice's default
    volume: float = 1.0
    threads: int = 2  # onnxruntime threads, not spinning: spinning beside llama.cpp stalled replies
    # The voice for each language the user may speak, e.g. zh = "zh_CN-huayan-medium"
    # (a persona's [voices] table fills in the rest); the reply's voice follows the language.
    languages: dict[str, str] = field(default_factory=dict)
    loaded_voices: int = 3  # voices kept loaded for live swaps (~100 MB each)


@dataclass
class CompanionSettings:
    name: str = "Mia"
    # how any companion talks (core/prompts.py, in the persona's language; tuned by
    # scripts/eval_conversation.py); given here, it is used for every persona
    persona: str | NotGiven = NOT_GIVEN


@dataclass
class VadSettings:
    """Speech-start tuning. Defaults chosen for a laptop or headset microphone.

    aggressiveness: webrtcvad mode 0..3. 2 is the middle ground: 0-1 call fans,
        keyboards and music speech; 3 misses soft onsets and quiet talkers.
    start_ms: voiced audio within the window that starts speech (90 ms = 3
        frames). Clicks and taps last one or two frames; a real syllable lasts
        100-250 ms, so this rejects the former yet still reacts within ~100 ms,
        which a barge-in needs to feel instant.
    window_ms: the sliding window those voiced frames must fall in (300 ms,
        about one syllable plus a gap). The frames need not be consecutive,
        because unvoiced consonants in a choppy onset can drop single frames.
    min_energy_dbfs: frames quieter than this are never speech. Conversational
        speech near a microphone sits around -35..-15 dBFS and a quiet room
        around -70..-60 dBFS; -50 leaves margin on both sides.
    """

    aggressiveness: int = 2
    start_ms: int = 90
    window_ms: int = 300
    min_energy_dbfs: float = -50.0


def barge_in_vad() -> VadSettings:
    """Stricter while the companion talks, so residual echo never starts a barge-in
    (scripts/eval_echo.py: with Speex cancellation no echo start at 150 ms / -40 dBFS)."""
    return VadSettings(start_ms=150, min_energy_dbfs=-40.0)


@dataclass
class EndpointSettings:
    """Silence (ms) that ends a user turn, by how complete the transcript looks.

    complete_silence_ms: the words look finished ("What time is it?", "yes").
        250 ms is about the shortest gap people leave between turns, shorter
        than a breath inside a sentence; a rare early cut costs little
        because the speculative reply is dropped as soon as the user goes on.
    default_silence_ms: no transcript yet, or it can't be judged. 600 ms is
        longer than most within-sentence pauses (200-500 ms) yet still feels
        responsive; it is also the usual fixed threshold of voice assistants.
    incomplete_silence_ms: the words stop mid-sentence ("and um", "然后",
        "parce que"). 1200 ms leaves time to find the next word without
        feeling that the companion has left.
    max_silence_ms: a hard cap whatever was said, so a heuristic that is
        wrong (or a settings mistake) never leaves the user waiting over 2 s.
    speculative_after_ms: start transcribing (and replying) this far into a
        pause. 150 ms skips stop consonants and breaths; the transcript is then
        usually ready before even the 250 ms complete threshold.

    The fusion (policy "fusion", conversation/endpointing.py `end_of_turn_silence_ms`)
    adds what 17 real recordings with pauses inside the turn showed
    (scripts/bench_turns.py, ../shared/testdata/speech-pauses, docs/benchmarks.md):
    statement_silence_ms: a full stop after `short_turn_ms` of speech or more.
        Whisper puts one after "Thomas Piketty in his book" and "你总会", and 9 of
        the 34 mid-clause pauses there followed a full stop (0.36-0.96 s); 250 ms
        answered inside them. 750 ms outwaits all but two (0.84 and 0.96 s) and
        keeps the delay after a real end under 0.9 s: the reply is prepared during
        the pause, so the wait is nearly all the delay it adds.
    short_turn_ms: below this much speech a full stop is believed ("I'm fine.").
    digits_silence_ms: the turn ends inside a dictated number ("one zero zero zero
        one, [1.35 s] nine oh two"): people read digits in groups with long gaps.
    thinking_silence_ms: the turn ends on a filler ("I was wondering if... um"): a
        thinking pause lasts 2-3 s, so this may exceed max_silence_ms.
    policy: "fusion", or "text" for the older rule (the transcript's look alone,
        250 ms after any full stop), kept as the benchmark's baseline.
    """

    complete_silence_ms: int = 250
    default_silence_ms: int = 600
    incomplete_silence_ms: int = 1200
    max_silence_ms: int = 2000
    speculative_after_ms: int = 150
    statement_silence_ms: int = 750
    short_turn_ms: int = 1000
    digits_silence_ms: int = 1600
    thinking_silence_ms: int = 2500
    policy: str = "fusion"


@dataclass
class TurnSettings:
    """How a live call takes turns (conversation/session.py)."""

    preroll_ms: int = 300  # audio kept from before the detected start of speech
    speculative: bool = True  # start STT and the reply during the user's pause
    # Speak the first clause after this many words even without punctuation (0: off);
    # not given: the tier's (tiers.LiveTuning). Measured with 6 on the latency
    # benchmark: no gain (first clauses of short replies end within 6 words anyway).
    first_clause_max_words: int | NotGiven = NOT_GIVEN
    # While the user speaks, transcribe what they said so far every this many ms of
    # speech and prefill it into the LLM, so at the end of the turn only the last
    # words are new to it (0: off); not given: the tier's. DESIGN.md measured a
    # 72-token turn's first token at 1.39 s cold vs 0.54 s prefilled with the 1.5B.
    prefill_while_speaking_ms: int | NotGiven = NOT_GIVEN
    # A wrong end-of-turn guess is made cheap: if the user goes on within this long of
    # the turn's end while the reply has played at most resume_max_played_ms, the reply
    # stops at once and is dropped as if never said, and the words join the same turn
    # (no barge-in filters: on real speech they threw continuations away). 2 s covers
    # every pause inside a turn in the development clips (longest 1.41 s). 0: off.
    resume_window_ms: int = 2000
    resume_max_played_ms: int = 1500
    # Speech not answered (noise, a backchannel, the companion's echo) is logged and its
    # words join the next turn's transcript if that turn starts within this long and is
    # in the same language (Whisper reads a mumble as any language).
    keep_unanswered_s: float = 10.0


@dataclass
class MemorySettings:
    # LLM fact extraction (patterns always run): "auto" = after each turn on a server
    # backend, at the end of the session for an embedded model (so the call keeps its
    # prompt cache), never on the tiny tier (it invents); or "after_turn", "session_end", "off".
    llm_extraction: str = "auto"
    recall_k: int = 6  # memories recalled into the prompt per turn
    # Recall by meaning as well as by words (engines/embeddings.py): "What is my job?"
    # finds "I work nights as a nurse". Off: full-text search only.
    recall_by_meaning: bool = True
    # Where memories live: "" = an SQLite file in each companion's folder (the embedded
    # default); "postgresql://user@host/db" = one PostgreSQL database that several servers
    # share, a schema per companion (docs/scaling.md; needs `pip install voice-companion[postgres]`).
    database_url: str = ""


@dataclass
class DownloadSettings:
    hf_endpoint: str = "https://huggingface.co"  # HF_ENDPOINT overrides (mirrors, tests)
    # A call screen (with the server's token) may ask this computer to download a voice
    # it lacks, offered when a reply's language has none (transports/websocket/voice_downloads.py).
    phone_downloads: bool = True

    def endpoint(self) -> str:
        return os.environ.get("HF_ENDPOINT", self.hf_endpoint).rstrip("/")


@dataclass
class Settings:
    stt: STTSettings = field(default_factory=STTSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    tts: TTSSettings = field(default_factory=TTSSettings)
    companion: CompanionSettings = field(default_factory=CompanionSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    barge_in: VadSettings = field(default_factory=barge_in_vad)
    endpointing: EndpointSettings = field(default_factory=EndpointSettings)
    turns: TurnSettings = field(default_factory=TurnSettings)
    paths: Paths = field(default_factory=Paths.from_environment)
    # "section.key" -> where a value that is not the default came from (a file, the
    # command line); every other value is the default.
    origins: dict[str, str] = field(default_factory=dict)

    def origin(self, section: str, key: str) -> str:
        return self.origins.get(f"{section}.{key}", "default")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The settings by section (NOT_GIVEN where the tier decides), for `config show`."""
        sections = {f.name: dict(vars(getattr(self, f.name))) for f in _sections()}
        sections["paths"] = {k: str(v) for k, v in dataclasses.asdict(self.paths).items()}
        return sections


def _sections() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if f.name not in ("paths", "origins")]


def load_settings(config_path: str | Path | None = None) -> Settings:
    """Defaults, then the TOML file if present. Unknown keys and wrong types are errors."""
    settings = Settings()
    explicit = config_path is not None
    path = Path(config_path) if config_path is not None else settings.paths.config_file
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {path}")
        return settings
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete it") from exc
    apply_overrides(settings, data, source=str(path))
    return settings


def apply_overrides(settings: Settings, data: dict[str, Any], source: str = "overrides") -> None:
    """Set ``data[section][key]`` on the settings, checking names and types."""
    known = {f.name: f for f in _sections()}
    for section_name, values in data.items():
        if section_name not in known or not isinstance(values, dict):
            raise ConfigError(f"{source}: unknown section [{section_name}]; known: {', '.join(known)}")
        section = getattr(settings, section_name)
        types = _field_types(type(section))
        for key, value in values.items():
            if key not in types:
                raise ConfigError(f"{source}: unknown key {section_name}.{key}; known: {', '.join(types)}")
            setattr(section, key, _coerce(value, types[key], f"{section_name}.{key}", source))
            settings.origins[f"{section_name}.{key}"] = source


def _field_types(section: type) -> dict[str, type]:
    """Each field's value type (`int | NotGiven` -> int)."""
    hints = typing.get_type_hints(section)
    out: dict[str, type] = {}
    for f in dataclasses.fields(section):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not NotGiven)
        out[f.name] = typing.get_origin(hint) or hint
    return out


def _coerce(value: Any, expected: type, name: str, source: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is dict and isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{source}: {name} must map names to text, got {value!r}")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {name} must be a {expected.__name__}, got {value!r}")
    return value


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    """A minimal TOML writer for flat sections of str/int/float/bool (a value nobody
    gave is left out: TOML cannot say "not given")."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [to_toml_line(key, value) for key, value in values.items() if not isinstance(value, NotGiven)]
        lines.append("")
    return "\n".join(lines)


def to_toml_line(key: str, value: Any) -> str:
    return f"{key} = {_toml_value(value)}"


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
