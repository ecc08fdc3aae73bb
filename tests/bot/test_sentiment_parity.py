"""The sentiment artifact gives the same scores in the bot env as in the app env.

The bot env (``.venv-bot``: Python 3.10, numpy 1.23, Rasa 3.6) loads the artifact
with :mod:`crm_ml.sentiment_infer` only; this test runs that interpreter in a
subprocess on an artifact trained here and compares its probabilities with the
app env's to 1e-9.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from crm_ml import sentiment
from crm_ml.sentiment_infer import SentimentModel

ROOT = Path(__file__).resolve().parents[2]
BOT_PYTHON = ROOT / ".venv-bot" / "bin" / "python"

TEXTS = [
    "I have been waiting for my refund for three weeks, this is unacceptable!",
    "Where is my order? It was supposed to arrive yesterday.",
    "Thank you so much, the package arrived early and everything is perfect :)",
    "Can I change the shipping address of order 536365?",
    "worst. service. ever. 😡😡😡",
    "@support love the new website &amp; the fast checkout http://example.com/x",
    "Ünïcödé café — naïve résumé, straße",
    "",
    "ok",
    "  lots   of   spaces \t and \n newlines ",
    "I want to talk to a human agent now",
    "The cake stand came broken. Again. Not happy.",
]

SCRIPT = r"""
import json, sys
from crm_ml.sentiment_infer import SentimentModel
model = SentimentModel.load(sys.argv[1])
texts = json.load(sys.stdin)
heavy = {"sklearn", "scipy", "pandas", "sqlalchemy", "joblib"}
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "numpy": __import__("numpy").__version__,
    "proba": model.predict_proba(texts).tolist(),
    "labels": [label for label, _ in model.predict(texts)],
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
}))
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentiment model trained on 3,000 tweets, exported as numpy data."""
    texts, y = sentiment.read_data()
    with threadpool_limits(limits=1):
        model = sentiment.SentimentClassifier().fit(texts[:3000], y[:3000])
    return model.export().save(tmp_path_factory.mktemp("sentiment"))


@pytest.fixture(scope="module")
def bot_python() -> Iterator[Path]:
    if not BOT_PYTHON.is_file():
        pytest.skip(f"bot env interpreter {BOT_PYTHON} not found: create it with `make install`")
    yield BOT_PYTHON


def _run_bot_env(python: Path, folder: Path, texts: list[str]) -> dict:
    out = subprocess.run(
        [str(python), "-c", SCRIPT, str(folder)], input=json.dumps(texts), cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bot_env_scores_equal_app_env_scores(artifact: Path, bot_python: Path) -> None:
    app = SentimentModel.load(artifact)
    expected = app.predict_proba(TEXTS)
    got = _run_bot_env(bot_python, artifact, TEXTS)
    assert got["python"] == "3.10"
    assert got["heavy"] == []  # numpy and the standard library only
    assert np.abs(np.array(got["proba"]) - expected).max() <= 1e-9
    assert got["labels"] == [label for label, _ in app.predict(TEXTS)]


def test_trained_artifact_in_models_dir_loads_in_the_bot_env(bot_python: Path) -> None:
    """The artifact `crm-ml train` stored, when there is one."""
    from crm_ml import sentiment_infer

    try:
        app = sentiment_infer.load_latest()
    except FileNotFoundError:
        pytest.skip("no trained sentiment model under models/ (run `crm-ml train sentiment`)")
    from crm_ml import registry

    info = registry.latest(sentiment_infer.MODEL_NAME)
    assert info is not None
    got = _run_bot_env(bot_python, info.path, TEXTS)
    assert np.abs(np.array(got["proba"]) - app.predict_proba(TEXTS)).max() <= 1e-9
