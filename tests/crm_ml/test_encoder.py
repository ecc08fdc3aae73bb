"""The sentence encoder's runtimes against the reference implementation, and its checksums.

tests/data/encoder_reference.json was made once with sentence-transformers on
PyTorch (scripts/make_encoder_reference.py says how). The files come from
``make encoder`` (part of ``make install``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crm_ml import encoder
from crm_ml.encoder import DEFAULT_DIR, EncoderMissing, SentenceEncoder, verify_files

REFERENCE = json.loads((Path(__file__).resolve().parents[1] / "data" / "encoder_reference.json")
                       .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def folder() -> Path:
    if not (DEFAULT_DIR / "model.safetensors").is_file():
        pytest.fail(f"no encoder files in {DEFAULT_DIR}: `make encoder` fetches them")
    return DEFAULT_DIR


def test_tokenizer_gives_the_reference_ids(folder: Path) -> None:
    tokenizer = encoder.WordPieceTokenizer.from_file(folder / "vocab.txt")
    for text, ids in zip(REFERENCE["texts"], REFERENCE["token_ids"], strict=True):
        assert tokenizer.encode(text) == ids, text


def test_an_email_address_reads_as_the_word_email(folder: Path) -> None:
    tokenizer = encoder.WordPieceTokenizer.from_file(folder / "vocab.txt")
    plain = tokenizer.encode("my address is email, thanks")
    assert tokenizer.encode("my address is nobody.here@example.org, thanks") == plain
    assert tokenizer.encode("my address is Jane_Doe+shop@mail.example.co.uk, thanks") == plain
    assert tokenizer.encode("thanks @united") != tokenizer.encode("thanks email")


@pytest.mark.parametrize("runtime, min_cosine, max_abs", [
    ("numpy", 0.99999, 2e-5),      # the exact forward in float32
    ("onnx", 0.99999, 2e-5),       # the same graph in onnxruntime
    ("onnx-int8", 0.97, 0.05),     # int8 weights per output channel: the serving default
])
def test_runtime_matches_reference(folder: Path, runtime: str, min_cosine: float,
                                   max_abs: float) -> None:
    model = SentenceEncoder(folder, runtime=runtime, cache_size=0)
    assert model.runtime == runtime
    ours = model.encode(REFERENCE["texts"])
    reference = np.asarray(REFERENCE["embeddings"], dtype=np.float32)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() >= min_cosine, dict(zip(REFERENCE["texts"], cosine.round(5), strict=True))
    assert np.abs(ours - reference).max() <= max_abs
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("runtime, min_cosine", [("onnx", 0.99999), ("onnx-int8", 0.97)])
def test_the_4th_layer_view_agrees_between_runtimes(folder: Path, runtime: str,
                                                    min_cosine: float) -> None:
    """The sentiment model's view (the 4th layer's mean) from the graphs equals the numpy
    forward's, whose last layer matches the reference above: the same pass, stopped early."""
    exact = SentenceEncoder(folder, runtime="numpy", cache_size=0)
    ours = SentenceEncoder(folder, runtime=runtime, cache_size=0)
    want = exact.encode(REFERENCE["texts"], view="layer4")
    got = ours.encode(REFERENCE["texts"], view="layer4")
    assert (got * want).sum(axis=1).min() >= min_cosine
    # Another layer than the sentence vector, from the same forward pass.
    final = ours.encode(REFERENCE["texts"])
    assert (final * got).sum(axis=1).max() < 0.99
    assert np.array_equal(ours.encode_views(REFERENCE["texts"])[:, 0], final)


def test_a_truncated_model_gives_its_last_layer_as_the_4th_layer_view(folder: Path) -> None:
    short = SentenceEncoder(folder, runtime="numpy", layers=3, cache_size=0)
    views = short.encode_views(["where is my parcel"])
    assert np.array_equal(views[0, 0], views[0, 1])


def test_batches_equal_single_messages(folder: Path) -> None:
    """Padding inside a batch changes nothing (the attention mask works)."""
    model = SentenceEncoder(folder, runtime="onnx", cache_size=0)
    together = model.encode(REFERENCE["texts"])
    alone = np.vstack([model.encode([t]) for t in REFERENCE["texts"]])
    assert np.abs(together - alone).max() < 1e-5


def test_cache_returns_the_same_vector(folder: Path) -> None:
    model = SentenceEncoder(folder)
    first = model.encode(["where is my order"])
    assert np.array_equal(model.encode(["where is my order", "hi"])[0], first[0])


def test_a_wrong_file_is_refused_with_a_clear_message(folder: Path, tmp_path: Path) -> None:
    for name in encoder.FILE_SHA256:
        shutil.copy2(folder / name, tmp_path / name)
    verify_files(tmp_path)  # the real files pass
    with (tmp_path / "model.safetensors").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ValueError,
                       match="model.safetensors has sha256 .* refusing it.*make encoder"):
        SentenceEncoder(tmp_path)


def test_missing_files_say_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(EncoderMissing, match="make encoder"):
        SentenceEncoder(tmp_path)


def test_fetch_script_accepts_present_files_without_download(folder: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "fetch_encoder", Path(__file__).resolve().parents[2] / "scripts" / "fetch_encoder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--dest", str(folder)]) == 0


def test_a_changed_runtime_graph_is_refused(folder: Path, tmp_path: Path) -> None:
    for name in [*encoder.FILE_SHA256, encoder.RUNTIME_FILES["onnx-int8"]]:
        (tmp_path / name).symlink_to(folder / name)
    graph = tmp_path / encoder.RUNTIME_FILES["onnx-int8"]
    graph.unlink()
    graph.write_bytes((folder / encoder.RUNTIME_FILES["onnx-int8"]).read_bytes()[:-16])
    with pytest.raises(ValueError, match="not the graph .*make encoder"):
        SentenceEncoder(tmp_path, runtime="onnx-int8")
