"""NLU graph components (bot env): sentiment on every message, out-of-scope as fallback.

No ``from __future__ import annotations`` here: Rasa's graph validation reads
the real annotations of ``train``/``process``.
"""

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
    CountVectorsFeaturizer,
)
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES
from rasa.utils.tensorflow.constants import RANKING_LENGTH
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    ENTITIES,
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from scipy.sparse import coo_matrix, csr_matrix
from rasa.shared.nlu.training_data.training_data import TrainingData

from crm_ml import registry

__all__ = [
    "VIEWS_KEY",
    "LinearIntentClassifier",
    "NEUTRAL",
    "OutOfScopeToFallback",
    "SENTIMENT_ENTITY",
    "SentenceCountVectorsFeaturizer",
    "SentenceEncoderFeaturizer",
    "SentimentAnalyzer",
]

logger = logging.getLogger(__name__)

SENTIMENT_ENTITY = "sentiment"
NEUTRAL = ("neutral", 0.0)
#: Where :class:`SentenceEncoderFeaturizer` leaves every pooled view of a message's
#: one encoder pass for the components after it (``crm_ml.encoder.VIEWS`` order, shape
#: ``(views, dim)``, unit-length rows; not part of the parse output): the sentiment
#: model reads the 4th layer's mean.
VIEWS_KEY = "sentence_encoding_views"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class SentenceEncoderFeaturizer(GraphComponent):
    """Dense sentence features from the pretrained encoder (:mod:`crm_ml.encoder`).

    Computed once per message: the configured ``views`` become one dense sentence
    feature that :class:`LinearIntentClassifier` reads beside the sparse n-grams
    (times ``scale``, which balances it against the counts under one
    regularisation), and every view stays on the message (``VIEWS_KEY``) for
    :class:`SentimentAnalyzer`.
    The weights are read from ``models/encoder`` (fetched and checked by
    ``make encoder``), never from a hub; a wrong or missing file stops the load
    with a message saying what to run.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"folder": None, "runtime": "auto", "max_length": 64, "scale": 1.0,
                "layers": None, "alias": "sentence_encoder", "views": ["final"]}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = config
        self._encoder: Any = None

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext
               ) -> "SentenceEncoderFeaturizer":
        component = cls(config)
        component.encoder()  # fail at start-up, not on the first message
        return component

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """The runtime's file: another encoder (or quantization) invalidates Rasa's cache."""
        from crm_ml import encoder

        folder = Path(config.get("folder") or encoder.DEFAULT_DIR)
        names = sorted(encoder.RUNTIME_FILES.values()) + sorted(encoder.FILE_SHA256)
        return json.dumps([config.get("runtime"), config.get("max_length"),
                           config.get("layers")] + [
            [name, (folder / name).stat().st_size if (folder / name).is_file() else None]
            for name in names])

    def encoder(self) -> Any:
        """The shared encoder of this process (loaded and checked on first use)."""
        if self._encoder is None:
            from crm_ml import encoder  # numpy (+ onnxruntime) only

            folder = self._config.get("folder")
            self._encoder = encoder.load_default(
                Path(folder) if folder else None, max_length=int(self._config["max_length"]),
                layers=self._config.get("layers"), runtime=self._config["runtime"])
        return self._encoder

    def _featurize(self, messages: List[Message]) -> None:
        todo = [m for m in messages if m.get(TEXT) is not None]
        if not todo:
            return
        from crm_ml.encoder import VIEWS

        views = self.encoder().encode_views([m.get(TEXT) or "" for m in todo])
        rows = [VIEWS.index(v) for v in self._config.get("views") or ["final"]]
        scale = np.float32(self._config["scale"])
        for message, both in zip(todo, views, strict=True):
            message.set(VIEWS_KEY, both)
            message.add_features(Features(both[rows].reshape(1, -1) * scale,
                                          FEATURE_TYPE_SENTENCE, TEXT, self._config["alias"]))

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True
)
class SentimentAnalyzer(GraphComponent, EntityExtractorMixin):
    """Adds the entity ``sentiment`` (negative/neutral/positive, with confidence).

    At training time the latest sentiment artifact of crm_ml's registry is copied
    into the Rasa model, so a trained Rasa model is self-contained. Inference
    uses :mod:`crm_ml.sentiment_infer` (numpy only).
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"models_dir": None, "model_name": "sentiment"}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage,
                 resource: Resource, model: Optional[Any] = None) -> None:
        self._config = config
        self._storage = model_storage
        self._resource = resource
        self._model = model

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext) -> "SentimentAnalyzer":
        return cls(config, model_storage, resource)

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """The sentiment artifact's version: a newly trained model invalidates Rasa's cache."""
        models_dir = config.get("models_dir")
        info = registry.latest(config.get("model_name", "sentiment"),
                               models_dir=Path(models_dir) if models_dir else None)
        return info.version if info else None

    def train(self, training_data: TrainingData) -> Resource:
        """Copy the latest sentiment artifact into the Rasa model."""
        models_dir = self._config.get("models_dir")
        info = registry.latest(self._config["model_name"],
                               models_dir=Path(models_dir) if models_dir else None)
        source = info.path if info else None
        if source is None:
            raise RuntimeError(
                "No sentiment model found: run `crm-ml train sentiment` before `rasa train`."
            )
        with self._storage.write_to(self._resource) as folder:
            for item in Path(source).iterdir():
                if item.is_file() and item.name != "model.joblib":
                    shutil.copy2(item, folder / item.name)
            (folder / "source.json").write_text(json.dumps({"path": str(source)}))
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "SentimentAnalyzer":
        from crm_ml import sentiment_infer  # numpy only

        try:
            with model_storage.read_from(resource) as folder:
                model = sentiment_infer.SentimentModel.load(folder)
        except (ValueError, FileNotFoundError, OSError):
            logger.exception("sentiment model missing from the Rasa model; all neutral")
            model = None
        return cls(config, model_storage, resource, model)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Add the sentiment entity to every message."""
        from crm_ml.encoder import VIEWS

        texts = [m.get(TEXT) or "" for m in messages]
        if self._model is not None and texts:
            row = VIEWS.index(self._model.view)
            views = [m.get(VIEWS_KEY) for m in messages]
            given = None if any(v is None for v in views) else np.vstack([v[row] for v in views])
            predictions = self._model.predict(texts, encodings=given)
        else:
            predictions = [NEUTRAL] * len(texts)
        for message, text, (label, confidence) in zip(messages, texts, predictions, strict=True):
            entity = {
                ENTITY_ATTRIBUTE_TYPE: SENTIMENT_ENTITY,
                ENTITY_ATTRIBUTE_VALUE: label,
                ENTITY_ATTRIBUTE_CONFIDENCE: float(round(confidence, 4)),
                ENTITY_ATTRIBUTE_START: 0,
                ENTITY_ATTRIBUTE_END: len(text),
                EXTRACTOR: self.__class__.__name__,
            }
            others = [e for e in message.get(ENTITIES, [])
                      if e.get(ENTITY_ATTRIBUTE_TYPE) != SENTIMENT_ENTITY]
            message.set(ENTITIES, others + [entity], add_to_output=True)
        return messages


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class OutOfScopeToFallback(GraphComponent):
    """Renames the intent ``out_of_scope`` to ``nlu_fallback`` (DESIGN.md contract).

    The classifier learns ``out_of_scope`` from CLINC150's out-of-scope examples;
    downstream, out-of-scope text must end in ``nlu_fallback``.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"source_intent": "out_of_scope", "target_intent": "nlu_fallback"}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._source = config["source_intent"]
        self._target = config["target_intent"]

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext
               ) -> "OutOfScopeToFallback":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            if intent.get(INTENT_NAME_KEY) == self._source:
                message.set(INTENT, {INTENT_NAME_KEY: self._target,
                                     PREDICTED_CONFIDENCE_KEY:
                                         intent.get(PREDICTED_CONFIDENCE_KEY, 1.0)},
                            add_to_output=True)
                ranking = message.get(INTENT_RANKING_KEY) or []
                for item in ranking:
                    if item.get(INTENT_NAME_KEY) == self._source:
                        item[INTENT_NAME_KEY] = self._target
                message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True
)
class SentenceCountVectorsFeaturizer(CountVectorsFeaturizer):
    """Rasa's CountVectorsFeaturizer that gives a live message its sentence vector only.

    At run time Rasa's featurizer runs the vectorizer twice per message: once
    per token (sequence features, for DIET or CRF) and once on the whole text
    (the sentence vector), each through scikit-learn's ``transform`` and a
    sparse-matrix conversion: 11% of a turn here. The pipeline's classifier
    (:class:`LinearIntentClassifier`) reads only the sentence vector, so this
    one computes that alone, by counting the vectorizer's own analyzer output
    against its vocabulary: the matrix ``transform`` gives (same columns,
    counts and dtypes; tests/bot_env/test_trained_nlu.py compares them on
    every text of the training and held-out data). Training is Rasa's,
    unchanged (both kinds of features).
    """

    def process(self, messages: List[Message]) -> List[Message]:
        if not self.vectorizers:
            return super().process(messages)
        for message in messages:
            for attribute in self._attributes:
                if attribute not in DENSE_FEATURIZABLE_ATTRIBUTES:  # Rasa's way for these
                    tokens = self._get_processed_message_tokens_by_attribute(
                        message, attribute)
                    sequence, sentence = self._create_features(attribute, [tokens])
                    self.add_features_to_message(sequence[0], sentence[0], attribute, message)
                    continue
                tokens = self._get_processed_message_tokens_by_attribute(message, attribute)
                if tokens and self.vectorizers.get(attribute) is not None:
                    self.add_features_to_message(
                        None, self.sentence_vector(attribute, tokens), attribute, message)
        return messages

    def sentence_vector(self, attribute: Text, tokens: List[Text]) -> coo_matrix:
        """``vectorizer.transform([" ".join(tokens)])`` as Rasa gives it (sorted, COO)."""
        vectorizer = self.vectorizers[attribute]
        analyzers = self.__dict__.setdefault("_analyzers", {})
        analyze = analyzers.get(attribute)
        if analyze is None:
            analyze = analyzers[attribute] = vectorizer.build_analyzer()
        vocabulary = vectorizer.vocabulary_
        counts: Dict[int, int] = {}
        for feature in analyze(" ".join(tokens)):
            column = vocabulary.get(feature)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.array(sorted(counts), dtype=np.int32)
        data = np.array([counts[c] for c in columns.tolist()], dtype=vectorizer.dtype)
        if vectorizer.binary:
            data.fill(1)
        return coo_matrix((data, (np.zeros(len(columns), dtype=np.int32), columns)),
                          shape=(1, len(vocabulary)))


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class LinearIntentClassifier(LogisticRegressionClassifier):
    """Rasa's LogisticRegressionClassifier that survives empty messages.

    Rasa 3.6's classifier fails on a message without tokens (an empty or blank
    text gets a shorter feature vector: "X has 7974 features, but ... expecting
    7984"), which takes the whole turn down. Such messages get ``nlu_fallback``.
    """

    def _create_X(self, messages: List[Message]) -> csr_matrix:
        """The classifier's input rows, built without Rasa's detour.

        Rasa's ``_create_X`` asks each message for its combined sparse features,
        which deep-copies and ``hstack``s the per-token sequence features of every
        featurizer too, only to keep the sentence row: that was 17% of a loaded
        Rasa process. Here the sentence rows of each featurizer are concatenated
        directly, sparse ones first, then dense ones, in the messages' feature
        order: the same matrix (tests/bot_env/test_trained_nlu.py compares them).
        """
        data: List[np.ndarray] = []
        indices: List[np.ndarray] = []
        indptr = [0]
        width = None
        for message in messages:
            sentence = [f for f in message.features
                        if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE]
            offset, nnz = 0, 0
            for f in [f for f in sentence if f.is_sparse()] + \
                     [f for f in sentence if f.is_dense()]:
                block = coo_matrix(f.features)
                data.append(block.data)
                indices.append(block.col.astype(np.int64) + offset)
                offset, nnz = offset + block.shape[1], nnz + block.nnz
            if width is not None and offset != width:  # rows must agree: Rasa's way
                return super()._create_X(messages)
            width = offset
            indptr.append(indptr[-1] + nnz)
        if not width:
            return super()._create_X(messages)
        return csr_matrix((np.concatenate(data), np.concatenate(indices), np.asarray(indptr)),
                          shape=(len(messages), width))

    def _predict_proba(self, X: csr_matrix) -> np.ndarray:
        """``clf.predict_proba(X)`` without copying the coefficients on every call.

        scikit-learn multiplies the sparse row by ``coef_.T``, a transposed view,
        which scipy copies into a contiguous array each time (the whole model,
        per message). The transposed copy is made once here; the result is the
        same softmax (compared in tests/bot_env/test_trained_nlu.py).
        """
        clf = self.clf
        multinomial = clf.multi_class == "multinomial" or (
            clf.multi_class == "auto" and clf.classes_.size > 2 and clf.solver != "liblinear")
        if not multinomial:
            return clf.predict_proba(X)
        coef_t = getattr(self, "_coef_t", None)
        if coef_t is None or coef_t.shape[0] != clf.coef_.shape[1]:
            coef_t = self._coef_t = np.ascontiguousarray(clf.coef_.T)
        scores = np.asarray(X @ coef_t) + clf.intercept_
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def _classify(self, messages: List[Message]) -> None:
        probas = self._predict_proba(self._create_X(messages))
        intents = self.clf.classes_
        for message, row in zip(messages, probas, strict=True):
            ranking = sorted(({"name": name, "confidence": float(p)}
                              for name, p in zip(intents, row, strict=True)),
                             key=lambda e: -e["confidence"])
            message.set(INTENT, ranking[0], add_to_output=True)
            if self.config[RANKING_LENGTH] > 0:
                ranking = ranking[: self.config[RANKING_LENGTH]]
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)

    def process(self, messages: List[Message]) -> List[Message]:
        texts = [m for m in messages if (m.get(TEXT) or "").strip()]
        if texts:
            self._classify(texts)
        for message in messages:
            if not (message.get(TEXT) or "").strip():
                message.set(INTENT, {INTENT_NAME_KEY: "nlu_fallback",
                                     PREDICTED_CONFIDENCE_KEY: 1.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training examples keep their labels (no fallback for intent-only examples)."""
        super().process(training_data.training_examples)
        return training_data
