"""NLU parse latency with and without the sentence encoder, and each encoder runtime (bot env).

Two measurements, both in one process on the same texts (the held-out phrasings):

* ``parse``: median ``Agent.parse_message`` of the trained model (encoder in the
  pipeline) against the same model with the encoder node's output served from a
  precomputed table (what the rest of the NLU graph costs without it);
* ``encode``: median time of one message through each encoder runtime
  (numpy float32, onnxruntime float32, onnxruntime int8), with the cosine of
  its vectors to the exact ones.

Usage::

    .venv-bot/bin/python -m bench.nlu_latency MODEL.tar.gz [--out FILE]
"""

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOLDOUT = ROOT / "tests" / "data" / "nlu_natural_holdout.yml"


def _texts() -> list[str]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [e.get("text") for e in load_data(str(HOLDOUT)).intent_examples]


def encoder_runtimes(texts: list[str]) -> dict[str, Any]:
    """Median milliseconds per message and the cosine to the exact vectors, per runtime."""
    import numpy as np

    from crm_ml.encoder import SentenceEncoder

    exact = SentenceEncoder(runtime="numpy", cache_size=0).encode(texts)
    out: dict[str, Any] = {}
    for runtime in ("numpy", "onnx", "onnx-int8"):
        model = SentenceEncoder(runtime=runtime, cache_size=0)
        model.encode(texts[:10])  # warm-up
        times, rows = [], []
        for text in texts:
            start = time.perf_counter()
            rows.append(model.encode([text])[0])
            times.append(1000 * (time.perf_counter() - start))
        cosine = (np.vstack(rows) * exact).sum(axis=1)
        out[runtime] = {"p50_ms": round(statistics.median(times), 3),
                        "min_cosine": round(float(cosine.min()), 5),
                        "mean_cosine": round(float(cosine.mean()), 5)}
    return out


def parse_latency(model_path: str, texts: list[str]) -> dict[str, Any]:
    """Median parse time with the encoder computed, and with its vectors precomputed.

    The two are interleaved text by text, so that both see the same machine load.
    """
    import numpy as np
    from rasa.core.agent import Agent

    from bot.nlu import SentenceEncoderFeaturizer

    agent = Agent.load(model_path)
    original = SentenceEncoderFeaturizer.encoder
    real = {}

    def computed(self: SentenceEncoderFeaturizer) -> Any:
        model = real.setdefault("model", original(self))
        model._cache.clear()  # every message through the runtime
        return model

    class Precomputed:
        def __init__(self, table: dict[str, Any]) -> None:
            self.table = table

        def encode_views(self, batch: list[str]) -> Any:
            return np.stack([self.table[t] for t in batch])

    async def one(text: str) -> float:
        start = time.perf_counter()
        await agent.parse_message(text)
        return 1000 * (time.perf_counter() - start)

    with_encoder: list[float] = []
    without: list[float] = []
    try:
        SentenceEncoderFeaturizer.encoder = computed  # type: ignore[method-assign]
        for text in texts[:20]:
            asyncio.run(one(text))  # warm-up
        table = dict(zip(texts, real["model"].encode_views(texts), strict=True))
        for text in texts:
            SentenceEncoderFeaturizer.encoder = computed  # type: ignore[method-assign]
            with_encoder.append(asyncio.run(one(text)))
            SentenceEncoderFeaturizer.encoder = (  # type: ignore[method-assign]
                lambda self: Precomputed(table))
            without.append(asyncio.run(one(text)))
    finally:
        SentenceEncoderFeaturizer.encoder = original  # type: ignore[method-assign]
    return {"texts": len(texts),
            "p50_ms_with_encoder": round(statistics.median(with_encoder), 3),
            "p50_ms_without_encoder": round(statistics.median(without), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--out")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    texts = _texts()
    result = {"parse": parse_latency(args.model, texts), "encode": encoder_runtimes(texts)}
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    else:
        json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
