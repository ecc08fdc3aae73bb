"""Summarise `rasa test nlu --cross-validation` the way the assistant is judged (any env).

Rasa's evaluation scores the classifier under the fallback: it takes the best
intent even when its confidence is below the fallback threshold, and it counts
a held-out ``out_of_scope`` example as wrong when the pipeline answers
``nlu_fallback``, which is what the assistant must do with it
(``bot.nlu.OutOfScopeToFallback``). This rebuilds every prediction from Rasa's
successes and errors (``--successes``), applies the fallback threshold of
config.yml (not its ambiguity rule: the files keep only the best intent),
counts ``out_of_scope`` and ``nlu_fallback`` as one label, and prints accuracy
and macro-F1 over the intents, with out-of-scope recall apart.

Usage: ``python scripts/nlu_cv_summary.py reports/nlu_cv [THRESHOLD]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REJECT = "nlu_fallback"


def _label(name: str) -> str:
    return REJECT if name in ("out_of_scope", REJECT) else name


def summary(folder: Path, threshold: float = 0.0) -> dict[str, float]:
    rows = json.loads((folder / "intent_errors.json").read_text())
    successes = folder / "intent_successes.json"
    if not successes.is_file():
        raise SystemExit(f"{successes} missing: run rasa test nlu with --successes")
    rows += json.loads(successes.read_text())

    def predicted(row: dict) -> str:
        guess = row["intent_prediction"]
        return REJECT if float(guess.get("confidence") or 0.0) < threshold \
            else _label(guess["name"])

    pairs = [(_label(r["intent"]), predicted(r)) for r in rows]
    labels = sorted({gold for gold, _ in pairs})
    f1s = []
    for label in labels:
        tp = sum(g == p == label for g, p in pairs)
        fp = sum(p == label != g for g, p in pairs)
        fn = sum(g == label != p for g, p in pairs)
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    oos = [(g, p) for g, p in pairs if g == REJECT]
    return {"examples": len(pairs), "accuracy": sum(g == p for g, p in pairs) / len(pairs),
            "macro_f1": sum(f1s) / len(f1s),
            "in_scope_macro_f1": sum(f for f, lab in zip(f1s, labels, strict=True)
                                     if lab != REJECT) / (len(labels) - (REJECT in labels)),
            "out_of_scope_recall": sum(p == REJECT for _, p in oos) / max(len(oos), 1)}


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/nlu_cv")
    s = summary(folder, float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    print(f"NLU 5-fold ({s['examples']} examples): intent accuracy {s['accuracy']:.3f}, "
          f"macro-F1 {s['macro_f1']:.3f} (in-scope intents {s['in_scope_macro_f1']:.3f}), "
          f"out-of-scope recall {s['out_of_scope_recall']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
