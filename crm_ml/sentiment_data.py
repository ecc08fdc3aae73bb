"""The sentiment model's data: airline tweets, our own in-domain messages, our test sentences.

Tweets (Twitter US Airline Sentiment) are the public training and held-out data;
the in-domain messages (our writing) join the training part only; the product and
service sentences of ``tests/data`` are never trained on.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from crm_ml.sentiment_infer import LABELS

__all__ = [
    "CROSS_DOMAIN_CSV",
    "IN_DOMAIN_CSV",
    "NLU_DIR",
    "read_data",
    "read_in_domain",
    "read_labelled_csv",
    "read_weighted",
]

# In-domain examples: the assistant's own NLU training data (our writing, not a
# third-party corpus). Tweets to airlines are mostly complaints (63% negative),
# so a model trained on them alone reads plain shop questions ("how many
# customers do we have") as negative. Requests and questions are added to the
# *training* part as neutral, complaints as negative and thanks as positive; the
# held-out tweets stay untouched, so the reported metrics remain comparable.
NLU_DIR = Path(__file__).resolve().parent.parent / "data" / "nlu"
IN_DOMAIN_LABELS = {"complaint": "negative", "thank": "positive"}
IN_DOMAIN_SKIP = frozenset({"review", "contact_human_agent", "payment_issue", "deny",
                            "out_of_scope", "nlu_fallback"})
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


#: Short messages about a shop's products and service, labelled by us (our writing):
#: complaints outside the airline vocabulary, calm requests, praise.
IN_DOMAIN_CSV = Path(__file__).resolve().parent.parent / "data" / "sentiment" / "in_domain.csv"


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` of a ``text,label`` CSV file (labels negative/neutral/positive)."""
    import csv

    texts: list[str] = []
    labels: list[str] = []
    with Path(path).open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            label = (row.get("label") or "").strip()
            if label not in LABELS:
                raise ValueError(f"{path}: unknown label {label!r} for {row.get('text')!r}")
            texts.append(row["text"])
            labels.append(label)
    return texts, labels


def read_in_domain(folder: Path = NLU_DIR, csv_path: Path | None = IN_DOMAIN_CSV
                   ) -> tuple[list[str], list[str]]:
    """Labelled in-domain messages: Rasa NLU files (``- intent:`` blocks) and our CSV.

    Returns:
        ``(texts, labels)``; entity annotations are reduced to their text.
    """
    texts: list[str] = []
    labels: list[str] = []
    if csv_path is not None and Path(csv_path).is_file():
        texts, labels = read_labelled_csv(csv_path)
    for path in sorted(folder.glob("*.yml")):
        intent = None
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("- intent:"):
                intent = stripped.split(":", 1)[1].strip()
            elif stripped.startswith(("- regex:", "- lookup:", "- synonym:")):
                intent = None
            elif intent and stripped.startswith("- ") and line.startswith("      "):
                if intent in IN_DOMAIN_SKIP:
                    continue
                texts.append(_ANNOTATION.sub(r"\1", stripped[2:]).strip())
                labels.append(IN_DOMAIN_LABELS.get(intent, "neutral"))
    return texts, labels


def read_data() -> tuple[list[str], np.ndarray]:
    """Tweets and labels of Twitter US Airline Sentiment."""
    texts, y, _ = read_weighted()
    return texts, y


def read_weighted() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tweets, labels and weights: the square of the annotators' agreement on the label."""
    from crm_ml.datasets import read_tweets

    df = read_tweets()
    agreement = df["airline_sentiment_confidence"].fillna(1.0).clip(0.0, 1.0).to_numpy()
    return (df["text"].astype(str).tolist(), df["airline_sentiment"].astype(str).to_numpy(),
            agreement.astype(np.float64) ** 2)


#: Short sentences about products and services (not airlines), written by us and
#: never trained on: how the model holds outside the tweets' domain.
CROSS_DOMAIN_CSV = (Path(__file__).resolve().parent.parent / "tests" / "data"
                    / "sentiment_cross_domain.csv")
