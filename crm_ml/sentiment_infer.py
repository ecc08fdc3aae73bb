"""Sentiment inference with numpy and the standard library only.

The bot env (Python 3.10, numpy 1.23, Rasa) and the app env (Python 3.11+,
numpy 2) both load the artifact that :mod:`crm_ml.sentiment` trains with
scikit-learn. The artifact holds no pickle, only data:

* ``sentiment.json``: format version, class labels, and for each TF-IDF block
  its analyzer (``word`` or ``char_wb``), n-gram range, token pattern,
  sublinear tf flag and norm;
* ``sentiment_vocab.json.gz``: each block's vocabulary, terms in column order;
* ``sentiment_weights.npz``: each block's idf vector, the coefficients
  ``(n_classes, n_features)`` and intercepts.

Format 2 adds a dense block after the TF-IDF blocks: the sentence encoder's
unit-length vector (:mod:`crm_ml.encoder`, the same one the NLU pipeline
computes once per message and passes in), times a stored scale. Format 1
artifacts (TF-IDF only) still load.

This module re-implements what scikit-learn does with them, step for step:
:func:`preprocess` (the training pipeline's own preprocessor, so both sides
use the same function), ``TfidfVectorizer``'s word n-grams (regex tokens,
n-grams joined by a space) and ``char_wb`` n-grams (each whitespace-separated
word padded with spaces), raw counts, ``1 + log(tf)``, times idf, l2
normalisation per block, the blocks side by side (``FeatureUnion``), then
``X @ coef.T + intercept`` and a softmax as ``LogisticRegression.predict_proba``
computes it. ``tests/crm_ml/test_sentiment.py`` checks the probabilities
against scikit-learn's to 1e-6 and ``tests/bot/test_sentiment_parity.py``
checks both environments agree to 1e-9.

Nothing here imports scikit-learn, scipy, pandas or SQLAlchemy.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crm_ml.encoder import EMAIL  # the same addresses the encoder reads as "email"

logger = logging.getLogger(__name__)

__all__ = [
    "LABELS",
    "MODEL_NAME",
    "SentimentModel",
    "TfidfBlock",
    "decide",
    "load_latest",
    "preprocess",
]

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MODEL_NAME = "sentiment"
META_FILE = "sentiment.json"
VOCAB_FILE = "sentiment_vocab.json.gz"
WEIGHTS_FILE = "sentiment_weights.npz"
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
LABELS = ("negative", "neutral", "positive")

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_WHITE_SPACES = re.compile(r"\s\s+")


def preprocess(text: str) -> str:
    """Normalise a message before tokenising (used in training and inference alike).

    HTML entities are decoded (``&amp;`` -> ``&``), text is lowercased, links
    become ``url``, e-mail addresses ``email`` and @-mentions ``@user``: the model
    learns from what people say, not from which account they address.

    Args:
        text: A raw message.

    Returns:
        The normalised text.
    """
    text = html.unescape(text).lower()
    text = _URL.sub(" url ", text)
    text = EMAIL.sub(" email ", text)
    return _MENTION.sub(" @user ", text)


def word_ngrams(doc: str, ngram_range: tuple[int, int], token_pattern: re.Pattern[str]
                ) -> list[str]:
    """Word n-grams of a preprocessed text, as ``TfidfVectorizer(analyzer="word")``.

    Args:
        doc: Preprocessed text.
        ngram_range: ``(min_n, max_n)``.
        token_pattern: Compiled token regex.

    Returns:
        Tokens and n-grams (joined by single spaces), in scikit-learn's order.
    """
    tokens = token_pattern.findall(doc)
    min_n, max_n = ngram_range
    if max_n == 1:
        return tokens
    original = tokens
    if min_n == 1:
        grams = list(original)
        min_n += 1
    else:
        grams = []
    n_tokens = len(original)
    for n in range(min_n, min(max_n + 1, n_tokens + 1)):
        for i in range(n_tokens - n + 1):
            grams.append(" ".join(original[i:i + n]))
    return grams


def char_wb_ngrams(doc: str, ngram_range: tuple[int, int]) -> list[str]:
    """Character n-grams inside word boundaries, as ``TfidfVectorizer(analyzer="char_wb")``.

    Args:
        doc: Preprocessed text.
        ngram_range: ``(min_n, max_n)``.

    Returns:
        The n-grams, each word padded with one space on both sides.
    """
    doc = _WHITE_SPACES.sub(" ", doc)
    min_n, max_n = ngram_range
    grams: list[str] = []
    for w in doc.split():
        w = " " + w + " "
        w_len = len(w)
        for n in range(min_n, max_n + 1):
            offset = 0
            grams.append(w[offset:offset + n])
            while offset + n < w_len:
                offset += 1
                grams.append(w[offset:offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return grams


@dataclass
class TfidfBlock:
    """One fitted TF-IDF vectorizer, as data.

    Attributes:
        name: Block name (``word``, ``char``).
        analyzer: ``"word"`` or ``"char_wb"``.
        ngram_range: ``(min_n, max_n)``.
        vocabulary: Terms in column order.
        idf: Inverse document frequencies, one per term.
        sublinear_tf: Whether term counts become ``1 + log(count)``.
        norm: ``"l2"`` or ``None``.
        token_pattern: Token regex (word analyzer).
    """

    name: str
    analyzer: str
    ngram_range: tuple[int, int]
    vocabulary: list[str]
    idf: np.ndarray
    sublinear_tf: bool = True
    norm: str | None = "l2"
    token_pattern: str = TOKEN_PATTERN

    def __post_init__(self) -> None:
        if self.analyzer not in ("word", "char_wb"):
            raise ValueError(f"unsupported analyzer {self.analyzer!r}")
        if self.norm not in ("l2", None):
            raise ValueError(f"unsupported norm {self.norm!r}")
        self.ngram_range = (int(self.ngram_range[0]), int(self.ngram_range[1]))
        self.idf = np.asarray(self.idf, dtype=np.float64)
        self._index: dict[str, int] = {t: i for i, t in enumerate(self.vocabulary)}
        self._token_re = re.compile(self.token_pattern)

    @property
    def size(self) -> int:
        """Number of columns."""
        return len(self.vocabulary)

    def analyze(self, doc: str) -> list[str]:
        """The terms of a preprocessed text."""
        if self.analyzer == "word":
            return word_ngrams(doc, self.ngram_range, self._token_re)
        return char_wb_ngrams(doc, self.ngram_range)

    def transform_one(self, doc: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse TF-IDF row of one preprocessed text.

        Returns:
            ``(columns, values)``, columns ascending.
        """
        counts = Counter(self._index[t] for t in self.analyze(doc) if t in self._index)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        cols = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
        tf = np.array([counts[c] for c in cols], dtype=np.float64)
        if self.sublinear_tf:
            tf = np.log(tf) + 1.0
        values = tf * self.idf[cols]
        if self.norm == "l2":
            norm = np.sqrt(np.dot(values, values))
            if norm > 0.0:
                values = values / norm
        return cols, values


class SentimentModel:
    """A linear 3-class sentiment model over TF-IDF blocks, numpy only.

    Args:
        classes: Class labels in column order (``negative``, ``neutral``, ``positive``).
        blocks: The TF-IDF blocks, in feature order.
        coef: Coefficients, shape ``(n_classes, n_features)``.
        intercept: Intercepts, shape ``(n_classes,)``.
        meta: Free-form metadata stored with the artifact.
    """

    def __init__(self, classes: Sequence[str], blocks: Sequence[TfidfBlock], coef: np.ndarray,
                 intercept: np.ndarray, meta: dict[str, Any] | None = None,
                 dense: dict[str, Any] | None = None) -> None:
        self.classes = [str(c) for c in classes]
        self.blocks = list(blocks)
        self.coef = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64).ravel()
        self.meta = dict(meta or {})
        #: ``{"dim", "scale", "runtime", "max_length", "view"}`` of the encoder block, or None.
        self.dense = dict(dense) if dense else None
        #: Which pooled view of the encoder the block reads (``crm_ml.encoder.VIEWS``;
        #: artifacts from before the views read the last layer's).
        self.view = str((self.dense or {}).get("view", "final"))
        n_sparse = sum(b.size for b in self.blocks)
        n_features = n_sparse + (int(self.dense["dim"]) if self.dense else 0)
        self._sparse_coef = self.coef[:, :n_sparse]
        self._dense_coef = np.ascontiguousarray(self.coef[:, n_sparse:].T) if self.dense else None
        if self.coef.shape != (len(self.classes), n_features):
            raise ValueError(f"coef has shape {self.coef.shape}, expected "
                             f"{(len(self.classes), n_features)}")
        if self.intercept.shape != (len(self.classes),):
            raise ValueError("one intercept per class expected")
        offsets = np.cumsum([0] + [b.size for b in self.blocks])
        self._offsets = [int(o) for o in offsets[:-1]]

    # ---------------------------------------------------------------- inference

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse feature row of one raw text: ``(columns, values)``."""
        doc = preprocess(text if isinstance(text, str) else str(text))
        cols, vals = [], []
        for block, offset in zip(self.blocks, self._offsets, strict=True):
            c, v = block.transform_one(doc)
            cols.append(c + offset)
            vals.append(v)
        return np.concatenate(cols), np.concatenate(vals)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The encoder block's input: unit-length sentence vectors (computed here)."""
        from crm_ml import encoder

        assert self.dense is not None
        return encoder.load_default(max_length=int(self.dense.get("max_length", 64)),
                                    runtime=str(self.dense.get("runtime", "auto"))
                                    ).encode(list(texts), view=self.view)

    def decision_function(self, texts: Iterable[str],
                          encodings: np.ndarray | None = None) -> np.ndarray:
        """Linear scores, shape ``(n, n_classes)``.

        Args:
            texts: Raw messages.
            encodings: Their sentence vectors when the caller has them already
                (the NLU pipeline does); computed here otherwise.
        """
        texts = list(texts)
        rows = []
        for text in texts:
            cols, vals = self.features(text)
            rows.append(self._sparse_coef[:, cols] @ vals + self.intercept)
        if not rows:
            return np.zeros((0, len(self.classes)))
        scores = np.vstack(rows)
        if self.dense is not None:
            if encodings is None:
                encodings = self.encode(texts)
            dense = np.asarray(encodings, dtype=np.float64) * float(self.dense["scale"])
            scores = scores + dense @ self._dense_coef
        return scores

    def predict_proba(self, texts: Iterable[str],
                      encodings: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)`` (softmax of the scores)."""
        scores = self.decision_function(texts, encodings)
        scores = scores - scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def predict(self, texts: Iterable[str],
                encodings: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Label and confidence (its probability) of each text.

        Args:
            texts: Raw messages.
            encodings: Their sentence vectors, if the caller has them.

        Returns:
            ``[(label, confidence), ...]``, e.g. ``[("negative", 0.93)]``.
        """
        proba = self.predict_proba(list(texts), encodings)
        best = decide(proba, self.classes, self.dense.get("negative_cutoff") if self.dense
                      else None)
        return [(self.classes[i], float(proba[r, i])) for r, i in enumerate(best)]


    # ---------------------------------------------------------------- storage

    def to_files(self) -> dict[str, bytes]:
        """The artifact's files (name -> content); see the module docstring."""
        meta = {
            "format_version": FORMAT_VERSION,
            "classes": self.classes,
            "blocks": [
                {"name": b.name, "analyzer": b.analyzer, "ngram_range": list(b.ngram_range),
                 "sublinear_tf": b.sublinear_tf, "norm": b.norm,
                 "token_pattern": b.token_pattern, "size": b.size}
                for b in self.blocks
            ],
            "preprocess": "html.unescape, lower, links -> url, @mentions -> @user",
            "dense": self.dense,
            "meta": self.meta,
        }
        vocab = {b.name: b.vocabulary for b in self.blocks}
        arrays = {f"idf_{b.name}": b.idf for b in self.blocks}
        arrays["coef"] = self.coef
        arrays["intercept"] = self.intercept
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return {
            META_FILE: json.dumps(meta, indent=2).encode("utf-8"),
            VOCAB_FILE: gzip.compress(json.dumps(vocab, ensure_ascii=True).encode("ascii"),
                                      mtime=0),
            WEIGHTS_FILE: buf.getvalue(),
        }

    def save(self, folder: str | Path) -> Path:
        """Write the artifact's files into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in self.to_files().items():
            (folder / name).write_bytes(blob)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> SentimentModel:
        """Load an artifact from its folder (or from any file inside it).

        Raises:
            FileNotFoundError: a file of the artifact is missing.
            ValueError: the files are of an unknown format.
        """
        folder = Path(path)
        if folder.is_file():
            folder = folder.parent
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no sentiment model in {folder} ({META_FILE} missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") not in READABLE_FORMATS:
            raise ValueError(f"sentiment artifact format {meta.get('format_version')!r} is not "
                             f"{FORMAT_VERSION}: retrain with `crm-ml train sentiment`")
        vocab = json.loads(gzip.decompress((folder / VOCAB_FILE).read_bytes()).decode("ascii"))
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        blocks = [
            TfidfBlock(name=b["name"], analyzer=b["analyzer"],
                       ngram_range=(b["ngram_range"][0], b["ngram_range"][1]),
                       vocabulary=vocab[b["name"]], idf=arrays[f"idf_{b['name']}"],
                       sublinear_tf=bool(b["sublinear_tf"]), norm=b["norm"],
                       token_pattern=b.get("token_pattern", TOKEN_PATTERN))
            for b in meta["blocks"]
        ]
        return cls(meta["classes"], blocks, arrays["coef"], arrays["intercept"],
                   meta.get("meta", {}), dense=meta.get("dense"))


def load_latest(models_dir: str | Path | None = None) -> SentimentModel:
    """Load the sentiment model in use from the registry folder.

    Reads ``<models_dir>/sentiment/LATEST`` like :mod:`crm_ml.registry`, without
    importing anything beyond the standard library and numpy.

    Args:
        models_dir: Registry root (default: the configured ``models/``).

    Raises:
        FileNotFoundError: no sentiment model was trained.
    """
    if models_dir is None:
        from crm_ml.config import get_settings  # standard library only

        models_dir = get_settings().models_dir
    base = Path(models_dir) / MODEL_NAME
    marker = base / "LATEST"
    if not marker.is_file():
        raise FileNotFoundError(
            f"no sentiment model under {base}: run `crm-ml train sentiment`")
    return SentimentModel.load(base / marker.read_text(encoding="utf-8").strip())


def decide(proba: np.ndarray, classes: Sequence[str], negative_cutoff: float | None
           ) -> np.ndarray:
    """Column index of each row's label: ``negative`` as soon as its probability reaches
    ``negative_cutoff`` (chosen on validation data), else the most probable class."""
    best = proba.argmax(axis=1)
    if negative_cutoff is not None and "negative" in classes:
        neg = list(classes).index("negative")
        best = np.where(proba[:, neg] >= negative_cutoff, neg, best)
    return best
