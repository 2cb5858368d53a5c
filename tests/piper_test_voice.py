"""Tiny Piper-format voices for tests: an .onnx with Piper's inputs and its .onnx.json.

Like piper's own test voice, the graph takes `input` (phoneme ids), `input_lengths`,
`scales` (and `sid` when multi-speaker) and returns audio shaped [1, 1, samples]; here
every phoneme becomes `HOP * length_scale` samples of a sine at the voice's own pitch (rounded to a
whole number of cycles per phoneme, so the wave is clean; one step higher per speaker
id), so a test can tell from the audio which voice spoke and how much text it
read. The config is a real Piper config (espeak phonemes, the bundled voice's phoneme
map), so text goes through Piper's real phonemizer, including Chinese ("cmn").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

HOP = 256


def build_voice(
    folder: Path,
    name: str,
    *,
    pitch_hz: float,
    sample_rate: int = 22050,
    espeak_voice: str = "en-us",
    speakers: int = 1,
    phoneme_id_map: dict | None = None,
) -> Path:
    """Write NAME.onnx and NAME.onnx.json into `folder`; return the .onnx path."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    block = 2 * HOP  # samples per phoneme at length_scale 2; scales[1] cuts it down
    t = np.arange(block, dtype=np.float32) / sample_rate
    phase = (2 * np.pi * t).reshape(1, 1, block).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["input"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "axis2"], ["ids3"]),  # [1, N, 1]
        helper.make_node("Mul", ["ids3", "zero"], ["zeros3"]),
        helper.make_node("Add", ["zeros3", "phase"], ["grid"]),  # [1, N, block]
        helper.make_node("Mul", ["grid", "freq"], ["angle"]),
        helper.make_node("Sin", ["angle"], ["wave"]),
        helper.make_node("Mul", ["wave", "amp"], ["loud"]),
        helper.make_node("Reshape", ["loud", "flat_shape"], ["flat"]),  # [1, 1, N * block]
        # keep N * block * length_scale / 2 samples: length_scale sets the speed, as in Piper
        helper.make_node("Shape", ["flat"], ["flat_dims"]),
        helper.make_node("Slice", ["flat_dims", "two", "three"], ["total"]),
        helper.make_node("Cast", ["total"], ["total_f"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["scales", "one", "two"], ["length_scale"]),
        helper.make_node("Mul", ["total_f", "length_scale"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "half"], ["wanted"]),
        helper.make_node("Floor", ["wanted"], ["wanted_floor"]),
        helper.make_node("Cast", ["wanted_floor"], ["end"], to=TensorProto.INT64),
        helper.make_node("Slice", ["flat", "zero_i", "end", "two"], ["output"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
        helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
    ]
    step = sample_rate / HOP  # one more cycle per phoneme
    freq = np.array([round(pitch_hz / step) * step], dtype=np.float32)
    if speakers > 1:
        inputs.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        nodes[4:5] = [
            helper.make_node("Cast", ["sid"], ["sid_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["sid_f", "step"], ["shift"]),
            helper.make_node("Add", ["shift", "freq"], ["pitch"]),
            helper.make_node("Mul", ["grid", "pitch"], ["angle"]),
        ]
    consts = {
        "one": np.array([1], dtype=np.int64),
        "two": np.array([2], dtype=np.int64),
        "three": np.array([3], dtype=np.int64),
        "zero_i": np.array([0], dtype=np.int64),
        "flat_shape": np.array([1, 1, -1], dtype=np.int64),
        "axis2": np.array([2], dtype=np.int64),
        "half": np.array([0.5], dtype=np.float32),
        "zero": np.array([0.0], dtype=np.float32),
        "phase": phase,
        "freq": freq,
        "amp": np.array([0.5], dtype=np.float32),
    }
    if speakers > 1:
        consts["step"] = np.array([step], dtype=np.float32)
    graph = helper.make_graph(
        nodes,
        name,
        inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "samples"])],
        initializer=[onnx.numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    config = {
        "audio": {"sample_rate": sample_rate, "quality": "x_low"},
        "espeak": {"voice": espeak_voice},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": phoneme_id_map or bundled_phoneme_map(),
        "num_symbols": 256,
        "num_speakers": speakers,
        "speaker_id_map": {f"speaker{i}": i for i in range(speakers)} if speakers > 1 else {},
        "piper_version": "1.0.0",
    }
    Path(f"{path}.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return path


def pitch_of(pitch_hz: float, sample_rate: int, speaker: int = 0) -> float:
    """The frequency `build_voice` really uses for this pitch (and speaker)."""
    step = sample_rate / HOP
    return (round(pitch_hz / step) + speaker) * step


def bundled_phoneme_map() -> dict:
    from voice_companion.engines.models import registry as models

    spec = models.get_spec("en_US-joe-medium")
    config = models.find_local(spec, Path("/nonexistent"))
    return json.loads(Path(f"{config}.json").read_text(encoding="utf-8"))["phoneme_id_map"]


def dominant_hz(samples: np.ndarray, sample_rate: int) -> float:
    """The strongest frequency in the audio: which test voice spoke."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[int(np.argmax(spectrum[1:])) + 1])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
