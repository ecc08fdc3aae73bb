"""Sentence-encoder vectors as a feature block for the text models (sentiment, topics).

The vectors are computed on every core (onnxruntime runs outside the GIL) and kept for
the process, since training refits on the same texts several times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["SentenceVectors", "encode_cached", "encode_parallel"]


class SentenceVectors(TransformerMixin, BaseEstimator):
    """The sentence encoder's unit-length vectors times ``scale`` (a dense feature block).

    Args:
        scale: Multiplier that balances the block against the TF-IDF blocks.
        runtime: :class:`crm_ml.encoder.SentenceEncoder` runtime (``auto``: int8 ONNX).
        max_length: Most word pieces per text.
        view: Pooled view (:data:`crm_ml.encoder.VIEWS`): ``final`` or ``layer4``.
    """

    def __init__(self, scale: float = 1.0, runtime: str = "auto", max_length: int = 64,
                 view: str = "final") -> None:
        self.scale = scale
        self.runtime = runtime
        self.max_length = max_length
        self.view = view

    def fit(self, texts: Sequence[str], y: Any = None) -> SentenceVectors:
        from crm_ml import encoder

        self.runtime_ = encoder.load_default(max_length=self.max_length,
                                             runtime=self.runtime).runtime
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        return encode_cached(list(texts), runtime=self.runtime, max_length=self.max_length,
                             view=self.view) * self.scale


_ENCODED: dict[tuple[str, int, str], np.ndarray] = {}


def encode_parallel(model: Any, texts: list[str], workers: int | None = None) -> np.ndarray:
    """``model.encode_views(texts)`` on every core: interleaved shares in threads (onnxruntime
    runs outside the GIL, one intra-op thread each), the rows back in order. The vectors
    are the same as one thread's: the int8 runtime encodes each text alone."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(texts) < 64:
        return model.encode_views(texts)
    shares = [texts[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(model.encode_views, shares))
    out = np.empty((len(texts), *parts[0].shape[1:]), dtype=parts[0].dtype)
    for i, part in enumerate(parts):
        out[i::workers] = part
    return out


def encode_cached(texts: list[str], *, runtime: str = "auto", max_length: int = 64,
                  view: str = "final") -> np.ndarray:
    """Sentence vectors (one pooled ``view``), kept for this process (training refits on
    the same texts; every view comes from the same pass)."""
    from crm_ml import encoder

    model = encoder.load_default(max_length=max_length, runtime=runtime)
    missing = list(dict.fromkeys(t for t in texts if (t, max_length, runtime) not in _ENCODED))
    for start in range(0, len(missing), 2048):
        chunk = missing[start: start + 2048]
        for text, vector in zip(chunk, encode_parallel(model, chunk), strict=True):
            _ENCODED[(text, max_length, runtime)] = vector
    if not texts:
        return np.zeros((0, model.dim), dtype=np.float64)
    row = encoder.VIEWS.index(view)
    return np.vstack([_ENCODED[(t, max_length, runtime)][row] for t in texts]
                     ).astype(np.float64)
