"""Shared set-up of the live-voice tests: installed test voices and a scripted brain."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import numpy as np
from piper_test_voice import dominant_hz
from voice_hub import TestVoices

from voice_companion.engines.llm import LLMBase

CJK = re.compile(r"[\u4e00-\u9fff]")


def install_all(voices: TestVoices, models_dir: Path, skip: tuple[str, ...] = ()) -> Path:
    """Put every test voice (but `skip`) where a download would (models_dir/ID/)."""
    for onnx in voices.folder.rglob("*.onnx"):
        voice_id = onnx.stem
        if voice_id not in skip:
            (models_dir / voice_id).mkdir(parents=True, exist_ok=True)
            for f in (onnx, Path(f"{onnx}.json")):
                shutil.copy(f, models_dir / voice_id / f.name)
    return models_dir


class ScriptedLLM(LLMBase):
    """Answers in the language of the user's message, a clause at a time: the brain is
    not under test here (the tiny one cannot speak Chinese); STT, voices and the
    session are real. `hold` pauses once the first clause is complete (the chunker has
    seen the next word begin) until it is set."""

    name = "scripted"

    def __init__(self) -> None:
        self.hold: asyncio.Event | None = None

    async def stream(self, messages, options=None, gate=None):
        chinese = bool(CJK.search(messages[-1].content))
        parts = (
            ["好的，", "我们说中文吧。", "你今天过得怎么样？"]
            if chinese
            else ["This is the first sentence. ", "Here", " is the second one. ", "And a third one."]
        )
        for i, part in enumerate(parts):
            yield part
            await asyncio.sleep(0.01)
            if i == 1 and self.hold is not None:
                await self.hold.wait()


def pitch(samples: np.ndarray, rate: int) -> float:
    return dominant_hz(samples, rate)
