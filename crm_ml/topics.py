"""Topics in what customers write: NMF and LDA, the number of topics by coherence.

Corpus: the airline tweets' negative messages (a large real set of complaints) and the
CRM's own customer-written texts: negative customer messages (``interactions``), ticket
bodies and escalation transcripts.

:class:`TopicModel` has a small scikit-learn-shaped API over two methods:

- ``nmf``: non-negative matrix factorisation of TF-IDF (unigrams and bigrams);
- ``lda``: latent Dirichlet allocation of word counts;
- ``kmeans``: KMeans over the sentence encoder's vectors (crm_ml.encoder), each cluster
  named by the terms whose mean TF-IDF in it most exceeds their corpus mean. The encoder
  costs about 10 s per 1,000 texts here, so training's automatic choice weighs NMF and LDA
  only; :func:`evaluate_tweets` takes ``methods`` to judge it too.

Each topic is named by its top terms (the label is the first three) with example
messages (the ones it explains best). The number of topics is chosen by **NPMI
coherence** of each topic's top 10 terms (normalised pointwise mutual information of
word pairs over documents, Bouma 2009; in [-1, 1], higher: words that really occur
together), computed here from the document-term matrix: no external corpus.

Evaluation (:func:`evaluate_tweets`): on the negative tweets, the topics' agreement with
the tweets' labelled negative reasons (NMI and purity), for NMF and LDA beside a baseline
of random topics with the same sizes; the method is chosen by coherence, not by NMI,
which is only the judge.

Training writes the topics into ``feedback_topics`` and each message's topic into
``topic_assignments``; :func:`complaint_topics` counts them for a period against the
period before (what the chat and the console show).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm_ml.training import Progress, training

__all__ = ["MODEL_NAME", "TopicModel", "assign", "choose_k", "complaint_topics",
           "evaluate_tweets", "npmi_coherence", "purity", "read_corpus", "train_and_store"]

logger = logging.getLogger(__name__)

MODEL_NAME = "topics"
#: Numbers of topics tried (NMF; LDA, slower, every other one).
K_RANGE = (4, 6, 8, 10, 12)
LDA_K_RANGE = (4, 8)
#: Top terms per topic (coherence and labels).
TOP_TERMS = 10
#: Example messages kept per topic.
EXAMPLES = 3
SEED = 0
METHODS = ("nmf", "lda", "kmeans")
#: Words that name the airline or are noise in tweets rather than a complaint's topic.
EXTRA_STOP = ("united", "usairways", "americanair", "southwestair", "jetblue", "virginamerica",
              "http", "https", "co", "amp", "just", "im", "dont", "thanks", "thank", "get",
              "got", "hi", "hello", "please", "can", "will", "would", "us", "now", "still")


_HANDLES = re.compile(r"^(?:@\w+[\s,:]*)+")  # "@united @jetblue my bag..." -> "my bag..."


def _tokens_stop() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(set(ENGLISH_STOP_WORDS) | set(EXTRA_STOP))


class TopicModel:
    """Topics of short texts.

    Args:
        method: ``"nmf"``, ``"lda"`` or ``"kmeans"`` (sentence vectors).
        k: Number of topics.
        min_df: Least documents a term appears in.
        seed: Random state.
    """

    def __init__(self, method: str = "nmf", k: int = 8, min_df: int = 5,
                 seed: int = SEED) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        self.method = method
        self.k = k
        self.min_df = min_df
        self.seed = seed

    def fit(self, texts: Sequence[str]) -> TopicModel:
        """Fit the vectoriser and the factorisation; sets ``topics_`` (terms per topic)."""
        from sklearn.decomposition import NMF, LatentDirichletAllocation
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        texts = [str(t) for t in texts]
        min_df = min(self.min_df, max(1, len(texts) // 50))
        common = {"stop_words": _tokens_stop(), "min_df": min_df, "max_df": 0.5,
                  "token_pattern": r"(?u)\b[a-zA-Z][a-zA-Z]+\b"}
        if self.method == "kmeans":
            return self._fit_kmeans(texts, common)
        if self.method == "nmf":
            self.vectorizer_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, **common)
            self.model_ = NMF(n_components=self.k, init="nndsvda", random_state=self.seed,
                              max_iter=200, tol=1e-3)
        else:
            self.vectorizer_ = CountVectorizer(**common)
            self.model_ = LatentDirichletAllocation(n_components=self.k, random_state=self.seed,
                                                    learning_method="online", max_iter=8,
                                                    batch_size=1024)
        X = self.vectorizer_.fit_transform(texts)
        weights = self.model_.fit_transform(X)
        return self._describe(texts, weights, self.model_.components_)

    def _fit_kmeans(self, texts: list[str], common: dict[str, Any]) -> TopicModel:
        from sklearn.cluster import KMeans
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, **common)
        X = self.vectorizer_.fit_transform(texts)
        self.model_ = KMeans(n_clusters=self.k, n_init=4, random_state=self.seed)
        vectors = _vectors(texts)
        best = self.model_.fit_predict(vectors)
        overall = np.asarray(X.mean(axis=0)).ravel()
        components = np.vstack([
            np.asarray(X[best == j].mean(axis=0)).ravel() - overall if (best == j).any()
            else np.zeros_like(overall) for j in range(self.k)])
        return self._describe(texts, 1.0 / (1.0 + self.model_.transform(vectors)), components)

    def _describe(self, texts: list[str], weights: np.ndarray,
                  components: np.ndarray) -> TopicModel:
        terms = np.asarray(self.vectorizer_.get_feature_names_out())
        self.topics_ = [list(terms[np.argsort(-row)[:TOP_TERMS]]) for row in components]
        self.labels_ = [", ".join(t[:3]) for t in self.topics_]
        best = weights.argmax(axis=1)
        self.sizes_ = np.bincount(best, minlength=self.k).tolist()
        self.examples_ = []
        for j in range(self.k):
            members = np.flatnonzero(best == j)
            order = members[np.argsort(-weights[members, j])]
            seen: list[str] = []
            for i in order:
                text = _HANDLES.sub("", " ".join(texts[i].split()))[:160]
                if text not in seen:
                    seen.append(text)
                if len(seen) == EXAMPLES:
                    break
            self.examples_.append(seen)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Topic weights per text (n x k); for kmeans 1 / (1 + distance to each centre)."""
        if self.method == "kmeans":
            return 1.0 / (1.0 + self.model_.transform(_vectors([str(t) for t in texts])))
        return self.model_.transform(self.vectorizer_.transform([str(t) for t in texts]))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The topic of each text (its largest weight)."""
        return self.transform(texts).argmax(axis=1)


def _vectors(texts: list[str]) -> np.ndarray:
    from crm_ml.sentence_vectors import encode_cached

    return encode_cached(texts)


def npmi_coherence(topics: Sequence[Sequence[str]], texts: Sequence[str],
                   top: int = TOP_TERMS) -> float:
    """Mean NPMI of the top-term pairs of every topic over the documents of ``texts``.

    A pair never seen together scores -1; terms missing from ``texts`` are skipped.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vocab = sorted({w for t in topics for term in t[:top] for w in [term]})
    if not vocab:
        return 0.0
    vec = CountVectorizer(vocabulary=vocab, ngram_range=(1, 2), binary=True,
                          token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    D = vec.transform([str(t).lower() for t in texts])
    n = D.shape[0]
    both = (D.T @ D).toarray().astype(float)  # documents holding each pair of terms
    df = np.diag(both).copy()
    index = {w: i for i, w in enumerate(vocab)}
    scores = []
    for terms in topics:
        ids = [index[w] for w in terms[:top] if df[index[w]] > 0]
        pair_scores = []
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                together = both[ids[a], ids[b]]
                if together == 0:
                    pair_scores.append(-1.0)
                    continue
                p_ab = together / n
                if p_ab >= 1:
                    pair_scores.append(1.0)
                    continue
                pmi = np.log(p_ab / ((df[ids[a]] / n) * (df[ids[b]] / n)))
                pair_scores.append(float(pmi / -np.log(p_ab)))
        if pair_scores:
            scores.append(float(np.mean(pair_scores)))
    return float(np.mean(scores)) if scores else 0.0


def choose_k(texts: Sequence[str], method: str = "nmf", ks: Sequence[int] = K_RANGE,
             seed: int = SEED) -> tuple[TopicModel, dict[int, float]]:
    """The model with the highest NPMI coherence over ``ks`` topics, and every k's."""
    if not ks:
        raise ValueError("no number of topics to try")
    scores: dict[int, float] = {}
    best: TopicModel | None = None
    for k in ks:
        model = TopicModel(method, k, seed=seed).fit(texts)
        scores[k] = round(npmi_coherence(model.topics_, texts), 4)
        if best is None or scores[k] > scores[best.k]:
            best = model
    return best, scores


def purity(labels: Sequence[Any], clusters: Sequence[int]) -> float:
    """Share of documents whose cluster's most common label is their own."""
    frame = pd.DataFrame({"label": list(labels), "cluster": list(clusters)})
    majority = frame.groupby("cluster")["label"].agg(lambda s: s.value_counts().iloc[0])
    return float(majority.sum() / len(frame))


def _negative_tweets() -> pd.DataFrame:
    from crm_ml.datasets import read_tweets

    tweets = read_tweets()
    neg = tweets[(tweets["airline_sentiment"] == "negative")
                 & tweets["negativereason"].notna()].copy()
    neg["written_at"] = pd.to_datetime(neg["tweet_created"].str[:19], errors="coerce")
    return neg.reset_index(drop=True)


def evaluate_tweets(neg: pd.DataFrame | None = None, *, seed: int = SEED,
                    ks: Sequence[int] = K_RANGE, lda_ks: Sequence[int] = LDA_K_RANGE,
                    methods: Sequence[str] = ("nmf", "lda")
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Choose the method and k by coherence; judge the topics against the negative reasons.

    Returns:
        ``(metrics, info)``: metrics ``k, coherence, nmi_tweets, purity_tweets, method``
        and the baselines' ``baseline_nmi_tweets, baseline_purity_tweets`` (random topics
        of the same sizes) and the other methods' figures; ``info`` the coherence per k.
    """
    from sklearn.metrics import normalized_mutual_info_score

    neg = _negative_tweets() if neg is None else neg
    texts, reasons = neg["text"].tolist(), neg["negativereason"].tolist()
    judged = [r != "Can't Tell" for r in reasons]
    rows: dict[str, dict[str, Any]] = {}
    y = [r for r, keep in zip(reasons, judged, strict=True) if keep]
    for method in methods:
        ks_tried = lda_ks if method == "lda" else ks
        model, by_k = choose_k(texts, method, ks_tried, seed)
        t = [c for c, keep in zip(model.predict(texts), judged, strict=True) if keep]
        rows[method] = {"k": model.k, "coherence": by_k[model.k], "by_k": by_k, "topics": t,
                        "nmi": float(normalized_mutual_info_score(y, t)),
                        "purity": purity(y, t), "labels": model.labels_}
    method = max(rows, key=lambda m: rows[m]["coherence"])
    chosen = rows[method]
    shuffled = np.random.default_rng(seed).permutation(chosen["topics"])
    metrics: dict[str, Any] = {
        "k": chosen["k"], "coherence": chosen["coherence"], "method": method,
        "nmi_tweets": round(chosen["nmi"], 4), "purity_tweets": round(chosen["purity"], 4),
        "baseline_nmi_tweets": round(float(normalized_mutual_info_score(y, shuffled)), 4),
        "baseline_purity_tweets": round(purity(y, shuffled), 4),
    }
    for other in (m for m in rows if m != method):
        metrics.update({f"{other}_coherence": rows[other]["coherence"],
                        f"{other}_k": rows[other]["k"],
                        f"{other}_nmi_tweets": round(rows[other]["nmi"], 4),
                        f"{other}_purity_tweets": round(rows[other]["purity"], 4)})
    info = {m: {"coherence_by_k": r["by_k"], "labels": r["labels"]} for m, r in rows.items()}
    info["tweets"] = len(texts)
    info["judged"] = int(sum(judged))
    return metrics, info


def read_corpus(url: str | None = None) -> pd.DataFrame:
    """What customers wrote: negative tweets and the CRM's own texts.

    Returns:
        Columns ``source`` (tweet, interaction, ticket, escalation), ``source_id``,
        ``written_at``, ``text``.
    """
    from sqlalchemy import select

    from crm_ml.db import models as m
    from crm_ml.db.session import session_scope

    neg = _negative_tweets()
    frames = [pd.DataFrame({"source": "tweet", "source_id": neg["tweet_id"].astype(str),
                            "written_at": neg["written_at"], "text": neg["text"]})]
    rows: list[dict[str, Any]] = []
    with session_scope(url) as session:
        for i, text, at in session.execute(
                select(m.Interaction.id, m.Interaction.text, m.Interaction.created_at).where(
                    m.Interaction.direction == "in", m.Interaction.sentiment == "negative")):
            rows.append({"source": "interaction", "source_id": str(i), "written_at": at,
                         "text": text})
        for i, subject, body, at in session.execute(
                select(m.Ticket.id, m.Ticket.subject, m.Ticket.body, m.Ticket.created_at)):
            rows.append({"source": "ticket", "source_id": str(i), "written_at": at,
                         "text": f"{subject}. {body}"})
        for i, transcript, at in session.execute(
                select(m.Escalation.id, m.Escalation.transcript, m.Escalation.created_at)):
            said = " ".join(str(t.get("text", "")) for t in (transcript or [])
                            if isinstance(t, dict) and t.get("from", t.get("role")) in
                            (None, "user", "customer"))
            if said.strip():
                rows.append({"source": "escalation", "source_id": str(i), "written_at": at,
                             "text": said})
    if rows:
        frames.append(pd.DataFrame(rows))
    corpus = pd.concat(frames, ignore_index=True)
    corpus = corpus[corpus["text"].astype(str).str.strip().str.len() > 0]
    return corpus.reset_index(drop=True)


def _write(session: Any, model: TopicModel, corpus: pd.DataFrame, version: str) -> int:
    from sqlalchemy import delete, insert

    from crm_ml.db.models_insights import FeedbackTopic, TopicAssignment

    weights = model.transform(corpus["text"].tolist())
    best = weights.argmax(axis=1)
    session.execute(delete(TopicAssignment.__table__))
    session.execute(delete(FeedbackTopic.__table__))
    ids = []
    for j in range(model.k):
        row = FeedbackTopic(label=model.labels_[j], top_terms=model.topics_[j],
                            examples=model.examples_[j], size=int((best == j).sum()),
                            model_version=version)
        session.add(row)
        session.flush()
        ids.append(row.id)
    rows = [{"topic_id": ids[int(b)], "source": s, "source_id": str(i)[:64],
             "written_at": (None if pd.isna(at) else pd.Timestamp(at).to_pydatetime()),
             "weight": float(w[int(b)]), "text": str(t)[:500]}
            for b, s, i, at, w, t in zip(best, corpus["source"], corpus["source_id"],
                                         corpus["written_at"], weights, corpus["text"],
                                         strict=True)]
    for start in range(0, len(rows), 5000):
        session.execute(insert(TopicAssignment.__table__), rows[start:start + 5000])
    return len(rows)


def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Judge NMF and LDA on the tweets' negative reasons, fit the chosen one on the whole
    corpus, store it and write the topics and every message's topic to the CRM.

    Returns:
        ``{k, coherence, nmi_tweets, purity_tweets, method, baseline_nmi_tweets, ...}``.
    """
    with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress,
                  preload=("sklearn.decomposition",)) as run:
        run.say("topics: choosing the number of topics by coherence (NMF and LDA, "
                f"k {K_RANGE[0]}-{K_RANGE[-1]}) on the negative tweets")
        metrics, info = evaluate_tweets()
        run.say(f"topics: {metrics['method']} with k={metrics['k']}, NMI with the negative "
                f"reasons {metrics['nmi_tweets']:.3f} "
                f"(random {metrics['baseline_nmi_tweets']:.3f})")
        corpus = read_corpus(url)
        model = TopicModel(metrics["method"], metrics["k"]).fit(corpus["text"].tolist())
        digest = hashlib.sha256("\n".join(corpus["text"].astype(str)).encode()).hexdigest()
        params = {**info, "corpus": corpus["source"].value_counts().to_dict(),
                  "labels": model.labels_, "sizes": model.sizes_, "seconds": run.seconds}
        _saved, n = run.store(model, metrics=metrics, data_hash=digest, params=params,
                              write=lambda s, version: _write(s, model, corpus, version))
        run.say(f"topics: {model.k} topics, {n:,} messages assigned")
    return metrics


def assign(texts: Sequence[str], *, models_dir: Path | None = None) -> list[str]:
    """The stored model's topic label of each new text."""
    from crm_ml import registry

    model, _info = registry.load(MODEL_NAME, models_dir=models_dir)
    return [model.labels_[int(j)] for j in model.predict(texts)]


def complaint_topics(*, session: Any, since: dt.datetime | None = None,
                     until: dt.datetime | None = None, limit: int = 5) -> dict[str, Any]:
    """Topics with their message counts in ``[since, until)`` and in the period before.

    Returns:
        ``{"in_period": bool, "topics": [{label, top_terms, examples, count,
        previous_count}]}``, most messages first. When the period holds no message,
        ``in_period`` is False and the counts are over everything (no trend).
    """
    from sqlalchemy import func, select

    from crm_ml.db.models_insights import FeedbackTopic, TopicAssignment

    topics = {t.id: t for t in session.scalars(select(FeedbackTopic))}
    if not topics:
        return {"in_period": False, "topics": []}

    def counts(start: dt.datetime | None, end: dt.datetime | None) -> dict[int, int]:
        q = select(TopicAssignment.topic_id, func.count()).group_by(TopicAssignment.topic_id)
        if start is not None:
            q = q.where(TopicAssignment.written_at >= start)
        if end is not None:
            q = q.where(TopicAssignment.written_at < end)
        return dict(session.execute(q).all())

    now = counts(since, until)
    before: dict[int, int] | None = None
    in_period = bool(now)
    if in_period and since is not None and until is not None:
        before = counts(since - (until - since), since)
    if not in_period:
        now = counts(None, None)
    order = sorted(now, key=lambda i: (-now[i], i))[:limit]
    return {"in_period": in_period, "topics": [
        {"label": topics[i].label, "top_terms": list(topics[i].top_terms or []),
         "examples": list(topics[i].examples or []), "count": int(now[i]),
         "previous_count": None if before is None else int(before.get(i, 0))}
        for i in order]}
