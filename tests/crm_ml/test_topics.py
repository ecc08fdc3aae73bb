"""crm_ml.topics: known topics recovered from a synthetic corpus, coherence picking their
number, the real tweets judged against their negative reasons, and the CRM rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from crm_ml import topics

VOCAB = {
    "delivery": ["parcel", "courier", "delivery", "tracking", "arrived", "late", "driver", "box"],
    "refund": ["refund", "money", "card", "charged", "payment", "invoice", "bank", "credit"],
    "quality": ["broken", "cracked", "faulty", "damaged", "quality", "scratched", "chipped",
                "defective"],
    "service": ["rude", "agent", "phone", "waiting", "hold", "support", "staff", "answer"],
}
NOISE = ["order", "really", "today", "week", "shop", "item", "again", "time"]


def synthetic(n_per_topic: int = 150, seed: int = 3) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, truth = [], []
    for name, words in VOCAB.items():
        for _ in range(n_per_topic):
            picked = list(rng.choice(words, 5)) + list(rng.choice(NOISE, 3))
            rng.shuffle(picked)
            texts.append(" ".join(picked))
            truth.append(name)
    return texts, truth


def test_known_topics_are_recovered_and_named_by_their_words() -> None:
    texts, truth = synthetic()
    for method in ("nmf", "lda"):
        model = topics.TopicModel(method, 4).fit(texts)
        assert normalized_mutual_info_score(truth, model.predict(texts)) > 0.8, method
    model = topics.TopicModel("nmf", 4).fit(texts)
    for terms in model.topics_:
        homes = {name for name, words in VOCAB.items() for w in terms[:3] if w in words}
        assert len(homes) == 1, terms  # each topic's top words come from one true topic
    assert all(len(e) == topics.EXAMPLES for e in model.examples_)


def test_sentence_vector_clusters_recover_the_known_topics() -> None:
    from crm_ml import encoder

    if not (encoder.DEFAULT_DIR / "model.onnx").exists() and not any(
            encoder.DEFAULT_DIR.glob("*.safetensors")):
        pytest.skip("the sentence encoder is not installed under models/encoder")
    texts, truth = synthetic(n_per_topic=60)
    model = topics.TopicModel("kmeans", 4).fit(texts)
    assert normalized_mutual_info_score(truth, model.predict(texts)) > 0.8
    for terms in model.topics_:  # named by the words of one true topic
        homes = {name for name, words in VOCAB.items() for w in terms[:3] if w in words}
        assert len(homes) == 1, terms
    with pytest.raises(ValueError):
        topics.TopicModel("svd", 4)


def test_coherence_picks_the_true_number_of_topics() -> None:
    texts, _ = synthetic()
    model, by_k = topics.choose_k(texts, "nmf", ks=(2, 3, 4, 6, 8))
    assert model.k == 4, by_k
    assert by_k[4] > by_k[2] and by_k[4] > by_k[8]


def test_npmi_is_one_for_words_always_together_and_minus_one_for_never() -> None:
    texts = ["alpha beta", "alpha beta", "gamma delta", "gamma delta"]
    assert topics.npmi_coherence([["alpha", "beta"]], texts) == pytest.approx(1.0)
    assert topics.npmi_coherence([["alpha", "gamma"]], texts) == -1.0


def test_purity() -> None:
    assert topics.purity(["a", "a", "b", "b"], [0, 0, 1, 1]) == 1.0
    assert topics.purity(["a", "b", "a", "b"], [0, 0, 0, 0]) == 0.5


@pytest.mark.slow
def test_the_tweets_topics_and_the_crm_rows(tmp_path: Path) -> None:
    from tests.support.servers import ROOT, crm_snapshot

    if not (ROOT / "var" / "crm.db").exists():
        pytest.skip("the CRM is not loaded (make load)")
    from crm_ml.db.session import get_engine, session_scope

    url = f"sqlite:///{crm_snapshot(tmp_path)}"
    metrics = topics.train_and_store(url=url, models_dir=tmp_path / "models")
    assert metrics["k"] in topics.K_RANGE or metrics["k"] in topics.LDA_K_RANGE
    # agreement with the tweets' labelled negative reasons, far above random topics
    assert metrics["nmi_tweets"] > 0.1 > metrics["baseline_nmi_tweets"]
    assert metrics["purity_tweets"] > metrics["baseline_purity_tweets"]
    with session_scope(url) as s:
        february = topics.complaint_topics(session=s, since=dt.datetime(2015, 2, 1),
                                           until=dt.datetime(2015, 3, 1), limit=3)
        empty = topics.complaint_topics(session=s, since=dt.datetime(2011, 12, 1),
                                        until=dt.datetime(2011, 12, 10))
    get_engine(url).dispose()
    assert february["in_period"] and len(february["topics"]) == 3
    counts = [t["count"] for t in february["topics"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 100
    assert all(t["previous_count"] == 0 for t in february["topics"])  # no tweets in January
    assert not empty["in_period"] and empty["topics"]  # said so, with the overall topics
    label = topics.assign(["my flight was delayed for 5 hours"],
                          models_dir=tmp_path / "models")[0]
    assert any(word in label for word in ("delay", "late", "flight")), label
