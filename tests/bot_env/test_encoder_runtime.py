"""The sentence encoder in the bot env (numpy 1.23, onnxruntime): reference vectors, one pass.

Runs with the bot env's Python (`make test` does). The reference vectors were made
once by sentence-transformers on PyTorch (scripts/make_encoder_reference.py).
"""

import json
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

from crm_ml.encoder import DEFAULT_DIR, SentenceEncoder

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((ROOT / "tests" / "data" / "encoder_reference.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def folder() -> Path:
    if not (DEFAULT_DIR / "model.safetensors").is_file():
        pytest.fail(f"no encoder files in {DEFAULT_DIR}: `make encoder` fetches them")
    return DEFAULT_DIR


@pytest.mark.parametrize("runtime, min_cosine", [("numpy", 0.99999), ("onnx", 0.99999),
                                                 ("onnx-int8", 0.97)])
def test_bot_env_runtime_matches_reference(folder: Path, runtime: str, min_cosine: float) -> None:
    ours = SentenceEncoder(folder, runtime=runtime, cache_size=0).encode(REFERENCE["texts"])
    cosine = (ours * np.asarray(REFERENCE["embeddings"], dtype=np.float32)).sum(axis=1)
    assert cosine.min() >= min_cosine


def test_each_message_is_encoded_once_for_intent_and_sentiment(folder: Path) -> None:
    """The featurizer's vector is the classifier's dense feature and the sentiment's input."""
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu import VIEWS_KEY, SentenceEncoderFeaturizer, SentimentAnalyzer
    from crm_ml.encoder import VIEWS

    featurizer = SentenceEncoderFeaturizer({**SentenceEncoderFeaturizer.get_default_config(),
                                            "scale": 3.0})
    calls: List[int] = []
    real = featurizer.encoder()

    class Counting:
        def encode_views(self, texts: Any) -> np.ndarray:
            calls.append(len(texts))
            return real.encode_views(texts)

    featurizer._encoder = Counting()
    message = Message({TEXT: "where is my parcel, it is two weeks late"})
    featurizer.process([message])
    dense = [f for f in message.features if f.is_dense()]
    assert len(dense) == 1 and dense[0].features.shape == (1, 384)
    views = message.get(VIEWS_KEY)
    assert views.shape == (len(VIEWS), 384)
    vector = views[VIEWS.index("final")]
    assert np.array_equal(vector, real.encode([message.get(TEXT)])[0])
    assert np.allclose(dense[0].features[0], vector * 3.0)
    assert not np.allclose(views[VIEWS.index("layer4")], vector)  # another layer's mean

    seen: List[Any] = []

    class Model:
        view = "layer4"

        def predict(self, texts: Any, encodings: Any = None) -> Any:
            seen.append(encodings)
            return [("negative", 0.9)] * len(texts)

    analyzer = SentimentAnalyzer({"models_dir": None, "model_name": "sentiment"}, None, None,
                                 Model())
    analyzer.process([message])
    assert calls == [1]  # one encoder pass for both components
    assert seen and np.array_equal(seen[0][0], views[VIEWS.index("layer4")])
