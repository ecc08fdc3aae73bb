"""The trained Rasa model (bot env): a sentiment on every message, contract intents."""

import asyncio
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "models" / "rasa" / "crm.tar.gz"
pytestmark = pytest.mark.skipif(not MODEL.is_file(),
                                reason="no trained Rasa model: run `make train`")

MESSAGES = [
    "hi", "where is my order 536365", "this is the worst shop ever, i want my money back",
    "thank you so much!!", "who are my hottest leads", "forecast revenue for next quarter",
    "what's the capital of peru", "", "???", "ok", "I want to speak to a human",
    "mark lead 412 as won", "what segment is customer 12347 in", "how do i pay",
    "emoji only 😡😡😡", "x" * 3000,
]


@pytest.fixture(scope="module")
def parsed():
    from rasa.core.agent import Agent

    agent = Agent.load(str(MODEL))

    async def parse_all():
        return [await agent.parse_message(text) for text in MESSAGES]

    return asyncio.run(parse_all())


def test_every_message_carries_one_sentiment(parsed):
    for result in parsed:
        sentiments = [e for e in result["entities"] if e["entity"] == "sentiment"]
        assert len(sentiments) == 1, result["text"]
        assert sentiments[0]["value"] in {"negative", "neutral", "positive"}
        assert 0.0 <= sentiments[0]["confidence"] <= 1.0


def test_angry_and_happy_are_told_apart(parsed):
    by_text = {r["text"]: r for r in parsed}

    def sentiment(text):
        return next(e["value"] for e in by_text[text]["entities"] if e["entity"] == "sentiment")

    assert sentiment("this is the worst shop ever, i want my money back") == "negative"
    assert sentiment("thank you so much!!") == "positive"
    assert sentiment("who are my hottest leads") != "negative"


def test_contract_intents_and_fallback(parsed):
    by_text = {r["text"]: r["intent"]["name"] for r in parsed}
    assert by_text["where is my order 536365"] == "track_order"
    assert by_text["who are my hottest leads"] == "ask_hot_leads"
    assert by_text["I want to speak to a human"] == "contact_human_agent"
    assert by_text["what's the capital of peru"] == "nlu_fallback"


def test_fast_feature_rows_equal_rasas(monkeypatch):
    """bot.nlu.LinearIntentClassifier builds the same input matrix as Rasa's own code
    and gives the same probabilities as scikit-learn's predict_proba."""
    import numpy as np
    from rasa.core.agent import Agent
    from rasa.nlu.classifiers.logistic_regression_classifier import (
        LogisticRegressionClassifier,
    )

    from bot.nlu import LinearIntentClassifier

    compared = []
    fast = LinearIntentClassifier._create_X

    def both(self, messages):
        ours = fast(self, messages)
        rasas = LogisticRegressionClassifier._create_X(self, messages)
        assert ours.shape == rasas.shape
        assert (ours != rasas).nnz == 0
        assert np.allclose(self._predict_proba(ours), self.clf.predict_proba(rasas),
                           rtol=1e-9, atol=1e-12)
        compared.append(ours.shape)
        return ours

    monkeypatch.setattr(LinearIntentClassifier, "_create_X", both)
    agent = Agent.load(str(MODEL))

    async def parse_all():
        return [await agent.parse_message(text) for text in MESSAGES if text.strip()]

    asyncio.run(parse_all())
    assert len(compared) == len([t for t in MESSAGES if t.strip()])
    assert all(rows == 1 and width > 1000 for rows, width in compared)


def test_sentence_vectors_equal_rasas_transform():
    """bot.nlu.SentenceCountVectorsFeaturizer's sentence vector is the one Rasa's
    featurizer computes (same columns, counts, dtypes), on every text of the
    NLU training data, the held-out file and the odd messages above."""
    import numpy as np
    from rasa.core.agent import Agent
    from rasa.nlu.tokenizers.tokenizer import Tokenizer
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu import SentenceCountVectorsFeaturizer

    agent = Agent.load(str(MODEL))
    components = [node._component for node in
                  agent.processor.graph_runner._instantiated_nodes.values()]
    featurizers = [c for c in components if isinstance(c, SentenceCountVectorsFeaturizer)]
    tokenizer = next(c for c in components if isinstance(c, Tokenizer))
    assert len(featurizers) == 2  # words and character n-grams
    root = MODEL.parents[2]
    texts = set(MESSAGES)
    for path in [root / "data" / "nlu", root / "tests" / "data" / "nlu_holdout.yml"]:
        texts |= {m.get(TEXT) for m in load_data(str(path)).training_examples if m.get(TEXT)}
    assert len(texts) > 1000
    compared = 0
    for text in sorted(texts):
        message = Message(data={TEXT: text})
        tokenizer.process([message])
        for featurizer in featurizers:
            tokens = featurizer._get_processed_message_tokens_by_attribute(message, TEXT)
            if not tokens:
                continue
            _, (rasas,) = featurizer._create_features(TEXT, [tokens])
            ours = featurizer.sentence_vector(TEXT, tokens)
            assert ours.shape == rasas.shape and ours.data.dtype == rasas.data.dtype
            assert np.array_equal(ours.col, rasas.col), text
            assert np.array_equal(ours.row, rasas.row) and np.array_equal(ours.data, rasas.data)
            compared += 1
    assert compared > 2000
