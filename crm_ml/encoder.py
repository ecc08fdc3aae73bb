"""Pretrained sentence encoder (all-MiniLM-L6-v2) in plain numpy: both environments.

The NLU pipeline (bot env) and the sentiment model (both envs) read one dense
sentence vector per message from here. The runtime is this module: BERT's
WordPiece tokenizer and the 6-layer transformer forward written with numpy,
reading the official ``model.safetensors`` directly (no PyTorch, no
``transformers``, no hub at run time). Mean pooling over the tokens and an L2
norm, as sentence-transformers does for this model.

Why numpy: the bot env pins numpy < 1.25 and an old protobuf (Rasa 3.6), and
PyTorch's default wheel brings gigabytes of CUDA libraries. A customer message
is short (median 12 tokens here), so the forward is a few small matrix products
per layer; the cost that matters is Python overhead, kept low by fusing Q, K, V
into one product, computing the unpadded length only, and caching the encodings
of repeated texts. ``max_length`` caps the tokens (64 by default: longer
messages keep their first 64 word pieces). tests/crm_ml/test_encoder.py compares
the embeddings with those of the reference implementation (sentence-transformers
on PyTorch), stored once in tests/data/encoder_reference.json.

The weights are checked by sha256 before use (:func:`verify_files`);
``scripts/fetch_encoder.py`` fetches them at install time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import struct
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DIR",
    "DIM",
    "EMAIL",
    "MID_LAYER",
    "VIEWS",
    "FILE_SHA256",
    "REVISION",
    "EncoderMissing",
    "SentenceEncoder",
    "WordPieceTokenizer",
    "load_default",
    "verify_files",
]

#: The official repository's revision the files come from.
REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
#: An e-mail address inside a message (the tokenizer and the sentiment n-grams read
#: it as the word "email").
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: sha256 of each file the runtime reads. ``model.safetensors``: the official
#: file (90,868,376 bytes, Apache-2.0); the others as published beside it.
FILE_SHA256: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
DEFAULT_DIR = Path(os.environ.get(
    "CRM_ENCODER_DIR",
    Path(__file__).resolve().parent.parent / "models" / "encoder" / "all-MiniLM-L6-v2"))
DIM = 384
#: The pooled views of a text: the last layer's mean (the sentence vector the model was
#: trained to give, read by the intent classifier) and the 4th layer's mean (read by the
#: sentiment model: chosen on the sentiment validation split, where it beat the last
#: layer by about one point of accuracy and carried better outside airline tweets).
VIEWS = ("final", "layer4")
MID_LAYER = 4
HOW_TO_FETCH = "run `make encoder` (scripts/fetch_encoder.py) to fetch and check them"


class EncoderMissing(FileNotFoundError):
    """The encoder's files are absent or are not the pinned ones."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: Path) -> None:
    """Check every file the runtime reads against its pinned sha256.

    Raises:
        EncoderMissing: a file is absent.
        ValueError: a file's content is not the pinned one (the message says which).
    """
    for name, expected in FILE_SHA256.items():
        path = Path(folder) / name
        if not path.is_file():
            raise EncoderMissing(f"sentence encoder file {path} is missing: {HOW_TO_FETCH}")
        actual = _sha256(path)
        if actual != expected:
            raise ValueError(
                f"sentence encoder file {path} has sha256 {actual}, expected {expected} "
                f"(all-MiniLM-L6-v2 at {REVISION[:12]}): refusing it; {HOW_TO_FETCH}")


# --- tokenizer ---------------------------------------------------------------------------

def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPieceTokenizer:
    """BERT's uncased tokenizer: clean, lowercase, strip accents, split punctuation, WordPiece.

    Args:
        vocab: Word pieces in id order (``vocab.txt``).
    """

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = {piece: i for i, piece in enumerate(vocab)}
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.unk_id = self.vocab["[UNK]"]
        self._words: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, path: Path) -> WordPieceTokenizer:
        return cls(Path(path).read_text(encoding="utf-8").splitlines())

    def _basic(self, text: str) -> list[str]:
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD:
                continue
            cat = unicodedata.category(char)
            if char in " \t\n\r" or cat == "Zs":
                out.append(" ")
            elif cat.startswith("C"):
                continue
            elif _is_cjk(cp):
                out.append(f" {char} ")
            else:
                out.append(char)
        words = []
        for token in "".join(out).lower().split():
            token = "".join(c for c in unicodedata.normalize("NFD", token)
                            if unicodedata.category(c) != "Mn")
            start = 0
            for i, char in enumerate(token):
                if _is_punctuation(char):
                    if i > start:
                        words.append(token[start:i])
                    words.append(char)
                    start = i + 1
            if start < len(token):
                words.append(token[start:])
        return words

    def _wordpiece(self, word: str) -> list[int]:
        cached = self._words.get(word)
        if cached is not None:
            return cached
        ids: list[int] = []
        if len(word) > 100:
            ids = [self.unk_id]
        else:
            start = 0
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    found = self.vocab.get(piece)
                    if found is not None:
                        break
                    end -= 1
                if found is None:
                    ids = [self.unk_id]
                    break
                ids.append(found)
                start = end
        if len(self._words) < 200_000:
            self._words[word] = ids
        return ids

    def encode(self, text: str, max_length: int = 64) -> list[int]:
        """Token ids with ``[CLS]`` and ``[SEP]``, at most ``max_length`` in all.

        An e-mail address reads as the word "email": its letters say who someone is,
        not what they mean ("nobody.here@example.org" read as upset before).
        """
        ids = [self.cls_id]
        for word in self._basic(EMAIL.sub("email", text)):
            ids.extend(self._wordpiece(word))
            if len(ids) >= max_length - 1:
                ids = ids[: max_length - 1]
                break
        ids.append(self.sep_id)
        return ids


# --- weights -----------------------------------------------------------------------------

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file as numpy arrays (format: 8-byte header size, JSON)."""
    data = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8: 8 + size])
    base = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data, dtype=_DTYPES[info["dtype"]],
                                      count=(end - start) // np.dtype(_DTYPES[info["dtype"]])
                                      .itemsize, offset=base + start).reshape(info["shape"])
    return tensors


#: onnxruntime graphs written by :mod:`crm_ml.encoder_export` from the checked weights.
RUNTIME_FILES = {"onnx": "encoder.onnx", "onnx-int8": "encoder.int8.onnx"}
#: Their sha256 as the pinned onnx and onnxruntime write them (the export is
#: deterministic): a trained classifier reads exactly these vectors.
RUNTIME_SHA256 = {
    "onnx": "78fdf04698ef249863bf602338a87423afdd85c55ff8387ff43b72b6c771496d",
    "onnx-int8": "14419f4880f6ea766526e26f7bfb0b7912919639a102a3caf62926e54a66a453",
}


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _onnx_session(path: Path) -> Any:
    """One onnxruntime session on one thread (the servers run one message at a time per
    process; more threads only contend with the event loop on a small machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU with the exact error function, as BERT's ``gelu``."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy is in both environments
        return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x * np.float32(1 / math.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence vectors of all-MiniLM-L6-v2.

    Args:
        folder: Folder with ``model.safetensors``, ``vocab.txt`` and ``config.json``.
        max_length: Most word pieces per text, ``[CLS]`` and ``[SEP]`` included.
        layers: Transformer layers to run (6 = the whole model).
        verify: Check the files' sha256 first (see :func:`verify_files`).
        cache_size: Texts whose vectors are kept (repeated messages cost nothing).
    """

    def __init__(self, folder: Path = DEFAULT_DIR, *, max_length: int = 64,
                 layers: int | None = None, verify: bool = True,
                 cache_size: int = 4096, runtime: str = "auto") -> None:
        folder = Path(folder)
        if verify:
            verify_files(folder)
        self.runtime = self._choose_runtime(folder, runtime, layers)
        self._session: Any = None
        if self.runtime != "numpy":
            self._session = _onnx_session(folder / RUNTIME_FILES[self.runtime])
        config = json.loads((folder / "config.json").read_text())
        self.max_length = int(max_length)
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.tokenizer = WordPieceTokenizer.from_file(folder / "vocab.txt")
        t = read_safetensors(folder / "model.safetensors")
        n_layers = int(config["num_hidden_layers"]) if layers is None else int(layers)
        self.n_layers = n_layers
        f32 = np.float32
        self.word = t["embeddings.word_embeddings.weight"]
        self.position = np.array(t["embeddings.position_embeddings.weight"], dtype=f32)
        self.type0 = np.array(t["embeddings.token_type_embeddings.weight"][0], dtype=f32)
        self.emb_ln = (t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        self.layers: list[dict[str, Any]] = []
        for i in range(n_layers):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([t[p + f"attention.self.{n}.weight"]
                                    for n in ("query", "key", "value")])
            qkv_b = np.concatenate([t[p + f"attention.self.{n}.bias"]
                                    for n in ("query", "key", "value")])
            self.layers.append({
                "qkv_w": np.ascontiguousarray(qkv_w.T, dtype=f32), "qkv_b": qkv_b.astype(f32),
                "out_w": np.ascontiguousarray(t[p + "attention.output.dense.weight"].T),
                "out_b": t[p + "attention.output.dense.bias"],
                "ln1": (t[p + "attention.output.LayerNorm.weight"],
                        t[p + "attention.output.LayerNorm.bias"]),
                "in_w": np.ascontiguousarray(t[p + "intermediate.dense.weight"].T),
                "in_b": t[p + "intermediate.dense.bias"],
                "ff_w": np.ascontiguousarray(t[p + "output.dense.weight"].T),
                "ff_b": t[p + "output.dense.bias"],
                "ln2": (t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"]),
            })
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @staticmethod
    def _choose_runtime(folder: Path, runtime: str, layers: int | None) -> str:
        if runtime == "auto":
            runtime = os.environ.get("CRM_ENCODER_RUNTIME", "onnx-int8")
            if layers is not None or not (folder / RUNTIME_FILES.get(runtime, "-")).is_file() \
                    or not _has_onnxruntime():
                runtime = "numpy"
        if runtime not in ("numpy", *RUNTIME_FILES):
            raise ValueError(f"unknown encoder runtime {runtime!r}")
        if runtime != "numpy":
            path = folder / RUNTIME_FILES[runtime]
            if not path.is_file():
                raise EncoderMissing(f"{path} is missing: {HOW_TO_FETCH}")
            if _sha256(path) != RUNTIME_SHA256[runtime]:
                raise ValueError(f"{path} is not the graph the pinned onnx/onnxruntime write "
                                 f"(sha256 {_sha256(path)}): {HOW_TO_FETCH}")
        return runtime

    @property
    def dim(self) -> int:
        return int(self.word.shape[1])

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        """Pooled views of token-id lists (padded to the longest in the batch):
        shape ``(n, len(VIEWS), dim)``."""
        n, length = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        if self._session is not None:
            final, mid = self._session.run(None, {
                "input_ids": ids, "position_ids": np.arange(length, dtype=np.int64),
                "attn_bias": ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]})
            return np.stack([self._pool(final, mask), self._pool(mid, mask)], axis=1)
        x = self.word[ids] + self.position[:length] + self.type0
        x = _layer_norm(x, *self.emb_ln, self.eps)
        heads, dim = self.heads, x.shape[-1]
        head_dim = dim // heads
        scale = np.float32(1.0 / math.sqrt(head_dim))
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        mid = x
        for number, layer in enumerate(self.layers, start=1):
            qkv = x @ layer["qkv_w"] + layer["qkv_b"]
            qkv = qkv.reshape(n, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, dim)
            x = _layer_norm(context @ layer["out_w"] + layer["out_b"] + x, *layer["ln1"],
                            self.eps)
            hidden = _gelu(x @ layer["in_w"] + layer["in_b"])
            x = _layer_norm(hidden @ layer["ff_w"] + layer["ff_b"] + x, *layer["ln2"], self.eps)
            if number <= MID_LAYER:  # a truncated model's mid view is its last layer
                mid = x
        return np.stack([self._pool(x, mask), self._pool(mid, mask)], axis=1)

    @staticmethod
    def _pool(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean over the real tokens, then unit length (sentence-transformers' Pooling)."""
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               view: str = "final") -> np.ndarray:
        """Unit-length sentence vectors, one row per text (``float32``, ``(n, 384)``).

        Args:
            texts: The texts.
            batch_size: Texts per forward pass (1 for the int8 runtime).
            view: ``"final"`` (the last layer's mean: the model's sentence vector) or
                ``"layer4"`` (see :data:`VIEWS`).

        Texts of similar length are batched together (little padding); repeated
        texts come from the cache. The int8 runtime encodes one text at a time:
        its activations are quantized per call, so a batch would change each
        text's vector with its neighbours (serving encodes one message alone).
        """
        return self.encode_views(texts, batch_size=batch_size)[:, VIEWS.index(view)]

    def encode_views(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Every view of each text from one forward pass: ``(n, len(VIEWS), 384)``."""
        if self.runtime == "onnx-int8":
            batch_size = 1
        out = np.zeros((len(texts), len(VIEWS), self.dim), dtype=np.float32)
        todo: list[tuple[int, str, list[int]]] = []
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(text)
                if hit is not None:
                    self._cache.move_to_end(text)
                    out[i] = hit
                else:
                    todo.append((i, text, self.tokenizer.encode(text or "", self.max_length)))
        todo.sort(key=lambda item: len(item[2]))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start: start + batch_size]
            vectors = self._forward([ids for _, _, ids in chunk])
            with self._lock:
                for (i, text, _), vector in zip(chunk, vectors, strict=True):
                    out[i] = vector
                    self._cache[text] = vector
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return out


_DEFAULT: dict[tuple[str, int, int | None, str], SentenceEncoder] = {}
_DEFAULT_LOCK = threading.Lock()


def load_default(folder: Path | None = None, *, max_length: int = 64,
                 layers: int | None = None, runtime: str = "auto") -> SentenceEncoder:
    """One shared encoder per folder and setting in this process (loaded on first use)."""
    key = (str(folder or DEFAULT_DIR), max_length, layers, runtime)
    with _DEFAULT_LOCK:
        encoder = _DEFAULT.get(key)
        if encoder is None:
            logger.info("loading the sentence encoder from %s", key[0])
            encoder = _DEFAULT[key] = SentenceEncoder(Path(key[0]), max_length=max_length,
                                                      layers=layers, runtime=runtime)
        return encoder
