"""One typed settings object with every default in one place.

Sources, later ones winning: the defaults below, the TOML file (the user config
dir's ``config.toml`` or ``--config PATH``), then command-line flags. Secrets
(API keys) are never stored in the file: the file names an environment variable.

``VOICE_COMPANION_HOME`` relocates config, data and model cache together, which
is how tests and separate profiles stay apart.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from voice_companion.core.errors import ConfigError
from voice_companion.core.prompts import PERSONA

APP_NAME = "voice-companion"
HOME_ENV = "VOICE_COMPANION_HOME"


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
    # The prompt window; 0 = the tier's (tiers.py: 4096 tiny, 2048 small, sized by the
    # brain's prefill speed on 2 cores so a returning user's prompt never waits on it).
    context_tokens: int = 0
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
    # Sampling: a value left at its default here takes the tier's own (tiers.py).
    max_tokens: int = 80  # about three spoken sentences; longer replies ramble
    temperature: float = 0.7
    top_p: float = 0.9
    repeat_penalty: float = 1.15
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
    persona: str = PERSONA  # core/prompts.py: tuned by scripts/eval_conversation.py

    def system_prompt(self) -> str:
        return self.persona.replace("{name}", self.name)


@dataclass
class MemorySettings:
    # LLM fact extraction (patterns always run): "auto" = after each turn on a server
    # backend, at the end of the session for an embedded model (so the call keeps its
    # prompt cache), never on the tiny tier (it invents); or "after_turn", "session_end", "off".
    llm_extraction: str = "auto"
    recall_k: int = 6  # memories recalled into the prompt per turn


@dataclass
class DownloadSettings:
    hf_endpoint: str = "https://huggingface.co"  # HF_ENDPOINT overrides (mirrors, tests)

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
    paths: Paths = field(default_factory=Paths.from_environment)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The effective settings by section, for `config show`."""
        sections = {f.name: dataclasses.asdict(getattr(self, f.name)) for f in _sections()}
        sections["paths"] = {k: str(v) for k, v in dataclasses.asdict(self.paths).items()}
        return sections


def _sections() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if f.name != "paths"]


def load_settings(config_path: str | Path | None = None) -> Settings:
    """Defaults, then the TOML file if present. Unknown keys and wrong types are errors."""
    settings = Settings()
    explicit = config_path is not None
    path = Path(config_path) if explicit else settings.paths.config_file
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
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{source}: unknown key {section_name}.{key}; known: {', '.join(fields)}")
            setattr(section, key, _coerce(value, getattr(section, key), f"{section_name}.{key}", source))


def _coerce(value: Any, default: Any, name: str, source: str) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is dict and isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{source}: {name} must map names to text, got {value!r}")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {name} must be a {expected.__name__}, got {value!r}")
    return value


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    """A minimal TOML writer for flat sections of str/int/float/bool."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
