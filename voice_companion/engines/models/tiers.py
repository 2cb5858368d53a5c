"""LLM tiers: which brain the companion talks with, all in one place.

A tier names its model(s), what it costs on the 2-core reference machine and the
sampling that suits it. ``llm.tier = "auto"`` (the default) takes the best tier that
is installed, so a newcomer gets the companion-grade brain when its parts are there
and the tiny one otherwise; ``--llm NAME`` picks one. An explicit ``llm.model``,
``llm.model_path`` or ``llm.backend = "openai"`` overrides the tier.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from voice_companion.core.config import NotGiven, Settings, given
from voice_companion.core.errors import ConfigError, ModelNotAvailable
from voice_companion.engines.llm import GenerationOptions
from voice_companion.engines.models import registry as models


@dataclass(frozen=True)
class Speed:
    """Expected cost on the 2-core reference machine (docs/benchmarks.md); None = unknown."""

    generate_tok_s: float | None = None
    prefill_tok_s: float | None = None  # a cold prompt (the persona at session start)
    first_token_s: float | None = None  # prompt prefix already cached
    load_s: float | None = None
    rss_gb: float | None = None
    measured: bool = True  # False: an estimate, not yet measured here

    def summary(self) -> str:
        parts = [
            f"load {self.load_s:g} s" if self.load_s else "",
            f"prefill {self.prefill_tok_s:g} tok/s" if self.prefill_tok_s else "",
            f"first token {self.first_token_s:g} s" if self.first_token_s else "",
            f"{self.generate_tok_s:g} tok/s" if self.generate_tok_s else "",
            f"{self.rss_gb:g} GB RAM" if self.rss_gb else "",
        ]
        text = ", ".join(p for p in parts if p)
        return f"estimate: {text}" if text and not self.measured else text


@dataclass(frozen=True)
class LiveTuning:
    """How a live call adapts to the brain's speed (conversation/session.py's settings)."""

    first_clause_max_words: int = 0  # speak after this many words even without a comma
    prefill_while_speaking_ms: int = 0  # listen ahead: prefill the user's words so far


# Recalled memories ride with each new message, so the LLM prefills them on the live
# path: at most this long at the tier's (cold, large-batch) prefill speed. Short
# batches run slower (small: 13 tokens in 0.44 s, ~30 tok/s), so 0.25 s here is about
# 0.5 s in fact: small ~16 tokens (one or two facts), tiny ~72.
RECALL_PREFILL_S = 0.25
# Every tier's reply ends at the first sentence end after this many words: the personas
# ask for under 30, and max_tokens cut 33 of 40 tiny replies mid-sentence
# (scripts/bench_returning.py --llm tiny --only chat40, docs/benchmarks.md).
WRAP_UP_WORDS = 25


@dataclass(frozen=True)
class TierModel:
    model: str  # a name in models.REGISTRY
    label: str  # how the notice and the listing call it


@dataclass(frozen=True)
class Tier:
    name: str
    description: str
    models: tuple[TierModel, ...]  # preferred first; empty for the remote tier
    speed: Speed
    sampling: GenerationOptions  # scripts/eval_conversation.py is how it gets tuned
    live: LiveTuning = LiveTuning()
    # The prompt window (llm.context_tokens when not set). It follows from the prefill
    # speed: a roll rebuilds the system message and half the turns (~60 % of the window)
    # off the critical path, in ~1 s steps while the companion is idle, and must be done
    # within the few turns before the window fills: ~10-25 s of prefill at most.
    context_tokens: int = 4096

    @property
    def recall_cap(self) -> int:
        speed = self.speed.prefill_tok_s
        return int(speed * RECALL_PREFILL_S) if speed else 10_000

    @property
    def install_hint(self) -> str:
        return " or ".join(models.get_spec(m.model).install_hint for m in self.models)


TIERS: dict[str, Tier] = {
    tier.name: tier
    for tier in (
        Tier(
            "tiny",
            "SmolLM2-135M: fast, for tests and plumbing; not a good companion",
            (TierModel("smollm2-135m", "SmolLM2-135M"),),
            Speed(generate_tok_s=87, prefill_tok_s=290, first_token_s=0.14, load_s=0.49),
            # scripts/eval_conversation.py: cooler sampling cut its rambling. A stop at a
            # line break scored higher there but made live replies that begin with a line
            # break empty (the companion said nothing), so it is not used. The 135M model
            # copies its last replies: with the penalty looking back 256 tokens (its last
            # reply and the new message) instead of 64, scripts/bench_returning.py's tiny
            # chat had 1 of 40 replies repeat an earlier first sentence instead of 26
            # (docs/benchmarks.md).
            GenerationOptions(
                max_tokens=80,
                temperature=0.4,
                top_p=0.9,
                repeat_penalty=1.15,
                repeat_last_n=256,
                wrap_up_words=WRAP_UP_WORDS,
            ),
            # Its first sentences run long ("I'm glad to hear that your story is a bit
            # different from what I usually see…"): speaking after 5 words brought the
            # first audio of scripts/bench_turns.py's answers from ~600-750 ms to ~490-560
            # ms after the reply started (docs/benchmarks.md, session 7).
            LiveTuning(first_clause_max_words=5),
            # ~205 tok/s cold prefill (963 tokens in 4.7 s): a 1k window rolls in ~3 s.
            # A 4k window made the 135M model copy its own history (scripts/bench_returning.py
            # --llm tiny --only chat40: 39 of 40 replies began with the same sentence, 4.8 s
            # a line); with 1k, 4 of 40 and 2.1 s a line (docs/benchmarks.md).
            context_tokens=1024,
        ),
        Tier(
            "small",
            "a 1.5B companion-grade brain: English, Chinese, French",
            (
                TierModel("qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B"),
                TierModel("qwen2.5-1.5b-instruct", "Qwen2.5-1.5B-Instruct"),
            ),
            Speed(generate_tok_s=12.5, prefill_tok_s=64, first_token_s=0.61, load_s=3.3, rss_gb=1.9),
            # top_p 0.8 as in Qwen2.5's own generation config; temperature 0.5 measured no
            # better in scripts/eval_conversation.py (docs/benchmarks.md)
            GenerationOptions(
                max_tokens=80, temperature=0.7, top_p=0.8, repeat_penalty=1.1, wrap_up_words=WRAP_UP_WORDS
            ),
            # ~80 ms a token: a four-word first clause starts the voice ~0.3 s sooner,
            # and prefilling the words so far halves the first token (docs/benchmarks.md)
            LiveTuning(first_clause_max_words=4, prefill_while_speaking_ms=1000),
            # ~56 tok/s cold prefill (962 tokens in 17.2 s): 4k windows made a returning
            # user wait 47-100 s; a 2k window's roll (~1,200 tokens) takes ~21 s of steps.
            context_tokens=2048,
        ),
        Tier(
            "medium",
            "a 3B brain: better answers, too slow for live calls on 2 cores",
            (TierModel("qwen2.5-3b-instruct", "Qwen2.5-3B-Instruct"),),
            Speed(generate_tok_s=6, prefill_tok_s=32, rss_gb=3.0, measured=False),  # ~half of small
            GenerationOptions(
                max_tokens=80, temperature=0.7, top_p=0.8, repeat_penalty=1.1, wrap_up_words=WRAP_UP_WORDS
            ),
            LiveTuning(first_clause_max_words=4, prefill_while_speaking_ms=1000),
            context_tokens=1024,  # half of small's speed, half its window
        ),
        Tier(
            "remote",
            "any OpenAI-compatible server: Ollama, llama.cpp server, vLLM, a hosted API",
            (),
            Speed(),
            GenerationOptions(
                max_tokens=80, temperature=0.7, top_p=0.9, repeat_penalty=1.1, wrap_up_words=WRAP_UP_WORDS
            ),
        ),
    )
}
# "auto" tries these in order. medium is opt-in: on 2 cores it cannot keep a live pace.
AUTO_ORDER = ("small", "tiny")
SAMPLING_KEYS = ("max_tokens", "temperature", "top_p", "repeat_penalty", "repeat_last_n", "wrap_up_words")


@dataclass(frozen=True)
class Choice:
    """What the LLM settings resolve to, and the one line that tells the user why."""

    tier: Tier | None  # None: an explicit model that belongs to no tier
    backend: str = "embedded"  # or "openai"
    model: str = ""  # registry name; "" for a path or the remote backend
    model_path: str = ""
    source: str = ""  # "bundled", "downloaded", "path" or "remote"
    notice: str = ""


def installed(tier: Tier, models_dir: Path) -> tuple[TierModel, str] | None:
    """The tier's first model that is installed, and from where; nothing is assembled."""
    for option in tier.models:
        source = models.availability(models.get_spec(option.model), models_dir)
        if source:
            return option, source
    return None


def select(settings: Settings) -> Choice:
    """Resolve llm.tier (and the explicit overrides) to one model; pure, cheap, no I/O but stat."""
    llm, models_dir = settings.llm, settings.paths.models_dir
    if llm.backend not in ("embedded", "openai"):
        raise ConfigError(f"llm.backend must be 'embedded' or 'openai', got {llm.backend!r}")
    if llm.tier != "auto" and llm.tier not in TIERS:
        raise ConfigError(f"llm.tier must be auto, {', '.join(TIERS)}; got {llm.tier!r}")
    if llm.backend == "openai" or llm.tier == "remote":
        return Choice(
            TIERS["remote"],
            "openai",
            source="remote",
            notice=f"using the remote brain: {llm.remote_model} at {llm.base_url}",
        )
    if llm.model_path:
        return Choice(
            None,
            model_path=llm.model_path,
            source="path",
            notice=f"using the LLM file {llm.model_path} (llm.model_path)",
        )
    if llm.model:
        return Choice(
            _tier_of(llm.model), model=llm.model, source="explicit", notice=f"using the LLM {llm.model} (llm.model)"
        )
    if llm.tier == "auto":
        return _auto(models_dir)
    tier = TIERS[llm.tier]
    found = installed(tier, models_dir)
    if found is None:
        raise ModelNotAvailable(f"the {tier.name} brain is not installed; install it with: {tier.install_hint}")
    option, source = found
    return Choice(
        tier,
        model=option.model,
        source=source,
        notice=f"using the {tier.name} brain ({option.label}, {source}), as asked",
    )


def _auto(models_dir: Path) -> Choice:
    for name in AUTO_ORDER:
        found = installed(TIERS[name], models_dir)
        if found is None:
            continue
        option, source = found
        if name == "small":
            why = "--llm tiny for the fast test model"
        else:
            why = f"fast but not a good companion; for the small brain: {TIERS['small'].install_hint}"
        return Choice(
            TIERS[name],
            model=option.model,
            source=source,
            notice=f"using the {name} brain ({option.label}, {source}); {why}",
        )
    raise ModelNotAvailable(f"no language model is installed; install one with: {models.BRAIN_HINT}")


def _tier_of(model: str) -> Tier | None:
    return next((t for t in TIERS.values() if any(m.model == model for m in t.models)), None)


def sampling(settings: Settings, choice: Choice) -> GenerationOptions:
    """The tier's sampling, except for each llm setting the user gave (whatever its value)."""
    base = choice.tier.sampling if choice.tier else TIERS["tiny"].sampling
    given_here = {k: v for k in SAMPLING_KEYS if not isinstance(v := getattr(settings.llm, k), NotGiven)}
    return dataclasses.replace(base, **given_here)


def context_tokens(settings: Settings, choice: Choice) -> int:
    """llm.context_tokens when given, else the tier's window (4096 off any tier)."""
    return given(settings.llm.context_tokens, choice.tier.context_tokens if choice.tier else 4096)


def tier_values(settings: Settings) -> dict[str, tuple[object, str]]:
    """What the tier supplies for each setting nobody gave: "section.key" -> (value, origin)."""
    try:
        choice = select(settings)
    except (ConfigError, ModelNotAvailable):
        return {}
    origin = f"tier {choice.tier.name}" if choice.tier else "built-in"
    live = choice.tier.live if choice.tier else LiveTuning()
    chosen = sampling(settings, choice)
    candidates: dict[str, tuple[object, object]] = {
        **{f"llm.{k}": (getattr(settings.llm, k), getattr(chosen, k)) for k in SAMPLING_KEYS},
        "llm.context_tokens": (settings.llm.context_tokens, context_tokens(settings, choice)),
        "turns.first_clause_max_words": (settings.turns.first_clause_max_words, live.first_clause_max_words),
        "turns.prefill_while_speaking_ms": (settings.turns.prefill_while_speaking_ms, live.prefill_while_speaking_ms),
    }
    return {key: (value, origin) for key, (mine, value) in candidates.items() if isinstance(mine, NotGiven)}


def recall_cap(choice: Choice) -> int:
    return choice.tier.recall_cap if choice.tier else 10_000


def describe(settings: Settings) -> tuple[list[dict], Choice | None]:
    """Rows for `voice-companion models`: each tier, installed or not, and the one in use."""
    try:
        choice: Choice | None = select(settings)
    except (ConfigError, ModelNotAvailable):
        choice = None
    rows = []
    for tier in TIERS.values():
        row = {
            "name": tier.name,
            "description": tier.description,
            "default": choice is not None and choice.tier is tier,
            "speed": tier.speed.summary(),
            "speed_detail": dataclasses.asdict(tier.speed),
        }
        if not tier.models:
            row.update(
                model=settings.llm.remote_model,
                base_url=settings.llm.base_url,
                installed=True,
                source="server",
                size_mb=None,
                install=None,
                speed=f"depends on the server at {settings.llm.base_url}",
            )
        else:
            found = installed(tier, settings.paths.models_dir)
            option = found[0] if found else tier.models[0]
            size = models.get_spec(option.model).total_size
            row.update(
                model=option.model,
                installed=found is not None,
                source=found[1] if found else None,
                size_mb=round(size / 1e6, 1) if size else None,
                install=None if found else tier.install_hint,
            )
        rows.append(row)
    return rows, choice
