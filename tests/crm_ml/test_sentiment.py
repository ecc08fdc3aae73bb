"""Sentiment: the numpy-only inference reproduces scikit-learn exactly; held-out targets."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sqlalchemy import select
from threadpoolctl import threadpool_limits

from crm_ml import registry, sentiment, sentiment_infer
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.sentiment_infer import SentimentModel
from tests.conftest import ROOT

TRICKY = [
    "@united my flight was Cancelled Flightled 😡😡 and nobody helps!!!",
    "Thanks @SouthwestAir, great crew &amp; smooth landing :) http://t.co/abc123",
    "  multiple   spaces\tand\ttabs\nand\nnewlines  ",
    "Ünïcödé café — naïve résumé, straße, ΑΘΗΝΑ",
    "a I x y z",  # one-letter words: no word tokens, but char n-grams
    "",
    "!!!",
    "www.example.com/path?x=1 is down again #fail",
    "can't won't don't I'm it's",
    "😀",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def tweets() -> tuple[list[str], np.ndarray]:
    return sentiment.read_data()


@pytest.fixture(scope="module")
def small(tweets: tuple[list[str], np.ndarray]) -> sentiment.SentimentClassifier:
    texts, y = tweets
    return sentiment.SentimentClassifier(C=3.0).fit(texts[:3000], y[:3000])


# --------------------------------------------------------------------------- analyzers

@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3)])
def test_word_ngrams_equal_sklearn(ngram_range: tuple[int, int]) -> None:
    analyzer = TfidfVectorizer(analyzer="word", ngram_range=ngram_range,
                               preprocessor=sentiment_infer.preprocess,
                               token_pattern=sentiment_infer.TOKEN_PATTERN).build_analyzer()
    import re

    pattern = re.compile(sentiment_infer.TOKEN_PATTERN)
    for text in TRICKY:
        ours = sentiment_infer.word_ngrams(sentiment_infer.preprocess(text), ngram_range, pattern)
        assert ours == analyzer(text), text


@pytest.mark.parametrize("ngram_range", [(1, 3), (2, 5), (4, 4)])
def test_char_wb_ngrams_equal_sklearn(ngram_range: tuple[int, int]) -> None:
    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range,
                               preprocessor=sentiment_infer.preprocess).build_analyzer()
    for text in TRICKY:
        ours = sentiment_infer.char_wb_ngrams(sentiment_infer.preprocess(text), ngram_range)
        assert ours == analyzer(text), text


def test_preprocess_known_answers() -> None:
    assert sentiment_infer.preprocess("@Delta LOVE it &amp; http://t.co/x") == \
        " @user  love it &  url "
    assert sentiment_infer.preprocess("") == ""
    assert sentiment_infer.preprocess("it's Nobody.Here@example.org, @Delta") == \
        "it's  email ,  @user "


# --------------------------------------------------------------------------- export

def test_exported_model_equals_sklearn(small: sentiment.SentimentClassifier,
                                      tweets: tuple[list[str], np.ndarray],
                                      tmp_path: Path) -> None:
    texts, _ = tweets
    held_out = texts[3000:4000] + TRICKY
    small.export(meta={"note": "test"}).save(tmp_path)
    model = SentimentModel.load(tmp_path)
    assert model.classes == ["negative", "neutral", "positive"]
    assert model.meta == {"note": "test"}
    ours = model.predict_proba(held_out)
    theirs = small.predict_proba(held_out)
    assert np.abs(ours - theirs).max() < 1e-6
    assert [label for label, _ in model.predict(held_out)] == list(small.predict(held_out))
    np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_predict_gives_label_and_confidence(small: sentiment.SentimentClassifier) -> None:
    model = small.export()
    out = model.predict(["This is the worst airline, lost my bag again", "thank you so much!"])
    assert [label for label, _ in out] == ["negative", "positive"]
    assert all(isinstance(c, float) and 1 / 3 < c <= 1 for _, c in out)
    assert model.predict([]) == []
    assert model.predict_proba([]).shape == (0, 3)


def test_artifact_files_hold_no_pickle(small: sentiment.SentimentClassifier,
                                       tmp_path: Path) -> None:
    files = small.export().to_files()
    assert set(files) == {sentiment_infer.META_FILE, sentiment_infer.VOCAB_FILE,
                          sentiment_infer.WEIGHTS_FILE}
    meta = json.loads(files[sentiment_infer.META_FILE])
    assert [b["analyzer"] for b in meta["blocks"]] == ["word", "char_wb"]
    vocab = json.loads(gzip.decompress(files[sentiment_infer.VOCAB_FILE]))
    assert len(vocab["word"]) == meta["blocks"][0]["size"]
    small.export().save(tmp_path)
    with np.load(tmp_path / sentiment_infer.WEIGHTS_FILE, allow_pickle=False) as npz:
        assert npz["coef"].shape == (3, sum(b["size"] for b in meta["blocks"]))


def test_load_errors(small: sentiment.SentimentClassifier, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SentimentModel.load(tmp_path / "nothing")
    small.export().save(tmp_path)
    meta = json.loads((tmp_path / sentiment_infer.META_FILE).read_text())
    meta["format_version"] = 99
    (tmp_path / sentiment_infer.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format"):
        SentimentModel.load(tmp_path / sentiment_infer.META_FILE)


def test_inference_imports_numpy_and_stdlib_only() -> None:
    code = (
        "import sys, crm_ml.sentiment_infer\n"
        "heavy = {'sklearn', 'scipy', 'pandas', 'sqlalchemy', 'joblib', 'rasa', 'rasa_sdk'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- metrics, storage

def test_metrics_known_answers() -> None:
    y = ["negative", "negative", "neutral", "positive", "negative"]
    p = ["negative", "neutral", "neutral", "positive", "positive"]
    out = sentiment.metrics(y, p)
    assert out["accuracy"] == pytest.approx(0.6)
    assert out["negative_recall"] == pytest.approx(1 / 3)
    assert out["negative_precision"] == pytest.approx(1.0)
    # F1: negative 0.5, neutral 2/3, positive 2/3.
    assert out["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)


def test_select_setting_prefers_macro_f1_among_those_reaching_the_recall_target(
        tweets: tuple[list[str], np.ndarray]) -> None:
    texts, y = tweets
    grid = [{"C": 3.0, "class_weight": None}, {"C": 3.0, "class_weight": "balanced"}]
    best, tried = sentiment.select_setting(texts[:2500], y[:2500], grid=grid)
    assert len(tried) == 2 and best in grid
    ok = [t for t in tried if t["validation"]["negative_recall"] >= 0.85]
    if ok:
        top = max(ok, key=lambda t: t["validation"]["macro_f1"])
        assert best == {"C": top["C"], "class_weight": top["class_weight"]}


def test_our_complaints_weigh_more_in_training_only(
        tweets: tuple[list[str], np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    texts, y = tweets
    seen = {}

    def capture(tr_x, tr_y, *, grid, seed, sample_weight, groups):  # noqa: ANN001, ANN202
        seen.update(x=list(tr_x), y=np.asarray(tr_y), w=np.asarray(sample_weight),
                    g=np.asarray(groups))
        return {"C": 3.0, "class_weight": None}, []

    monkeypatch.setattr(sentiment, "select_setting", capture)
    extra = (["the kettle leaks everywhere", "where is your warehouse", "lovely mugs, thanks"],
             ["negative", "neutral", "positive"])
    _, _, info = sentiment.fit_and_evaluate(texts[:600], y[:600], extra=extra,
                                            weights=np.full(600, 0.5))
    ours = seen["g"] == 1
    assert seen["x"][-3:] == extra[0] and ours.sum() == 3
    assert seen["w"][ours].tolist() == [sentiment.IN_DOMAIN_NEGATIVE_WEIGHT, 1.0, 1.0]
    assert sentiment.IN_DOMAIN_NEGATIVE_WEIGHT > 1.0
    assert set(seen["w"][~ours]) == {0.5}
    assert not set(extra[0]) & set(info["test_texts"])


def test_train_and_store_records_a_run_and_a_loadable_artifact(
        sqlite_url: str, tmp_path: Path, tweets: tuple[list[str], np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    texts, y = tweets
    monkeypatch.setattr(sentiment, "read_weighted",
                        lambda: (texts[:2500], y[:2500], np.linspace(0.3, 1.0, 2500)))
    monkeypatch.setattr(sentiment, "GRID", sentiment.GRID[:1])
    out = sentiment.train_and_store(url=sqlite_url, models_dir=tmp_path)
    assert set(out) == {"accuracy", "macro_f1", "negative_recall", "negative_precision"}
    info = registry.latest(sentiment.MODEL_NAME, models_dir=tmp_path)
    assert info is not None and info.metrics == out
    assert not (info.path / "model.joblib").exists()  # numpy artifact only
    model = sentiment_infer.load_latest(tmp_path)
    assert model.predict(["terrible service"])[0][0] in sentiment_infer.LABELS
    with session_scope(sqlite_url) as s:
        assert s.execute(select(m.ModelRun.name)).scalars().all() == [sentiment.MODEL_NAME]


def test_load_latest_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crm-ml train sentiment"):
        sentiment_infer.load_latest(tmp_path)


# --------------------------------------------------------------------------- real data

@pytest.mark.slow
def test_held_out_targets_and_exact_export(tweets: tuple[list[str], np.ndarray]) -> None:
    texts, y = tweets
    model, metrics, info = sentiment.fit_and_evaluate(texts, y)
    assert metrics["accuracy"] >= 0.78
    assert metrics["negative_recall"] >= 0.85
    assert metrics["macro_f1"] >= 0.70
    exported = model.export()
    test_texts = info["test_texts"]
    assert len(test_texts) == 2928
    diff = np.abs(exported.predict_proba(test_texts) - model.predict_proba(test_texts)).max()
    assert diff < 1e-6
    assert sentiment.evaluate(exported, test_texts, info["test_labels"]) == metrics


def test_encoding_on_every_core_gives_the_same_rows_in_order() -> None:
    from crm_ml import sentence_vectors

    class Fake:
        def encode_views(self, texts: list[str]) -> np.ndarray:
            return np.array([[[float(len(t)), float(sum(map(ord, t)))], [1.0, float(len(t))]]
                             for t in texts])

    texts = [f"message number {i} " * (i % 5 + 1) for i in range(203)]
    together = sentence_vectors.encode_parallel(Fake(), texts, workers=3)
    assert np.array_equal(together, Fake().encode_views(texts))
