"""How well the trained assistant understands people (bot env; `make report` runs it).

Parses held-out text with the trained Rasa model (the same graph the server
runs) and prints, then writes to ``reports/understanding.json``:

* intent accuracy and macro-F1 on the held-out files: ``tests/data/nlu_holdout.yml``
  (100 phrasings by the team) and ``tests/data/nlu_natural_holdout.yml`` (12 per
  customer intent, written separately in the way customers type, plus
  out-of-scope sentences that must end in ``nlu_fallback``);
* out-of-scope rejection against false rejection of in-scope phrasings, as a
  curve over the confidence threshold: CLINC150's ``oos_val`` (never trained
  on) against the in-scope held-out phrasings, and the threshold in config.yml;
* the escalation policy (``bot.policy.escalation_reason``, the code the server
  runs) on ``tests/data/escalation_set.yml``: precision, recall, and the false
  escalations of calm messages;
* the sentiment entity on ``tests/data/sentiment_cross_domain.csv`` (products
  and services, not airlines): negative recall and precision.

Usage: ``.venv-bot/bin/python scripts/understanding_report.py [--model PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 19)]
REJECTED = {"nlu_fallback", "out_of_scope"}


def _read_nlu(path: Path) -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [(e.get("text"), e.get("intent")) for e in load_data(str(path)).intent_examples]


def _oos_val() -> list[str]:
    folder = Path(os.environ.get("CRM_DATASETS_DIR", ROOT.parent / "shared" / "datasets"))
    path = folder / "clinc150_train_val.json.gz"
    if not path.is_file():
        return []
    return [text for text, _ in json.loads(gzip.decompress(path.read_bytes()))["oos_val"]]


def _intent(parse: dict[str, Any]) -> tuple[str, float]:
    """The classifier's top intent and confidence (before the fallback renamed it)."""
    ranking = parse.get("intent_ranking") or []
    top = ranking[0] if ranking else parse.get("intent") or {}
    name = top.get("name") or "nlu_fallback"
    return name, float(top.get("confidence") or 0.0)


def _final(parse: dict[str, Any]) -> str:
    return (parse.get("intent") or {}).get("name") or "nlu_fallback"


def _sentiment(parse: dict[str, Any]) -> tuple[str, float]:
    for entity in parse.get("entities") or []:
        if entity.get("entity") == "sentiment":
            return entity.get("value"), float(entity.get("confidence") or 0.0)
    return "neutral", 0.0


def intent_scores(pairs: list[tuple[str, str]], parses: list[dict[str, Any]]) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    gold = ["nlu_fallback" if g in REJECTED else g for _, g in pairs]
    pred = [_final(p) for p in parses]
    wrong = [{"text": t, "expected": g, "got": p}
             for (t, _), g, p in zip(pairs, gold, pred, strict=True) if g != p]
    right = sum(g == p for g, p in zip(gold, pred, strict=True))
    return {"n": len(pairs), "accuracy": right / len(pairs),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "wrong": wrong}


def rejection_curve(in_scope: list[dict[str, Any]], oos: list[dict[str, Any]],
                    ambiguity: float = 0.0) -> list[dict[str, float]]:
    """Rejected = the fallback's verdict at threshold t: the top intent is out-of-scope,
    its confidence is below t, or it leads the second by less than ``ambiguity``."""
    def rejected(p: dict[str, Any], t: float) -> bool:
        name, confidence = _intent(p)
        ranking = p.get("intent_ranking") or []
        second = float(ranking[1].get("confidence") or 0.0) if len(ranking) > 1 else 0.0
        return name in REJECTED or confidence < t or confidence - second < ambiguity

    return [{"threshold": t,
             "oos_rejection": sum(rejected(p, t) for p in oos) / max(len(oos), 1),
             "in_scope_false_rejection": sum(rejected(p, t) for p in in_scope)
             / max(len(in_scope), 1)} for t in THRESHOLDS]


def escalation_scores(conversations: list[dict[str, Any]],
                      parses: dict[str, list[dict[str, Any]]], threshold: float,
                      complaint_threshold: float | None = None) -> dict[str, Any]:
    from rasa.shared.core.events import UserUttered

    from bot.policy import escalation_reason

    tp = fp = fn = tn = 0
    mistakes = []
    for conv in conversations:
        events: list[UserUttered] = []
        reason = None
        for text, parse in zip(conv["turns"], parses[conv["id"]], strict=True):
            events.insert(0, UserUttered(text, parse.get("intent"), parse.get("entities")))
            reason = escalation_reason(events[:2], threshold,
                                       complaint_threshold=complaint_threshold)
            if reason:
                break
        said = bool(reason)
        if said and conv["escalate"]:
            tp += 1
        elif said:
            fp += 1
            mistakes.append({"id": conv["id"], "kind": "false escalation", "reason": reason,
                             "turns": conv["turns"]})
        elif conv["escalate"]:
            fn += 1
            mistakes.append({"id": conv["id"], "kind": "missed", "turns": conv["turns"]})
        else:
            tn += 1
    calm = [c for c in conversations if c.get("source") == "hard_negative"]
    calm_ids = {c["id"] for c in calm}
    return {"n": len(conversations), "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "calm_false_escalations": sum(m["id"] in calm_ids and m["kind"] != "missed"
                                          for m in mistakes),
            "calm_n": len(calm), "mistakes": mistakes}


def sentiment_scores(rows: list[tuple[str, str]], parses: list[dict[str, Any]]
                     ) -> dict[str, Any]:
    pred = [_sentiment(p)[0] for p in parses]
    gold = [label for _, label in rows]
    tp = sum(g == p == "negative" for g, p in zip(gold, pred, strict=True))
    right = sum(g == p for g, p in zip(gold, pred, strict=True))
    return {"n": len(rows), "accuracy": right / len(rows),
            "negative_recall": tp / max(gold.count("negative"), 1),
            "negative_precision": tp / max(pred.count("negative"), 1),
            "confusion": {f"{g}->{p}": n
                          for (g, p), n in Counter(zip(gold, pred, strict=True)).items()}}


def _config_threshold() -> tuple[float, float, float, float | None]:
    """Fallback threshold, its ambiguity threshold, the escalation's negative thresholds."""
    import yaml

    config = yaml.safe_load((ROOT / "config.yml").read_text())
    esc = next((p for p in config["policies"] if p["name"].endswith("EscalationPolicy")), {})
    fb = next((c for c in config["pipeline"] if c["name"] == "FallbackClassifier"), {})
    complaint = esc.get("complaint_threshold")
    return (float(fb.get("threshold", 0.3)), float(fb.get("ambiguity_threshold", 0.1)),
            float(esc.get("negative_threshold", 0.85)),
            None if complaint is None else float(complaint))


async def _parse_all(agent: Any, texts: list[str]) -> list[dict[str, Any]]:
    return [await agent.parse_message(t) for t in texts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "rasa" / "crm.tar.gz"))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "understanding.json")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    import structlog
    import yaml
    from rasa.core.agent import Agent

    # Rasa 3.6 logs every parse at debug level through structlog, on stdout.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    print(f"understanding: loading {args.model}", flush=True)
    agent = Agent.load(args.model)
    parse = lambda texts: asyncio.run(_parse_all(agent, texts))  # noqa: E731
    fallback_t, ambiguity, negative_t, complaint_t = _config_threshold()
    report: dict[str, Any] = {"model": args.model, "fallback_threshold": fallback_t,
                              "ambiguity_threshold": ambiguity,
                              "negative_threshold": negative_t,
                              "complaint_threshold": complaint_t}
    in_scope: list[dict[str, Any]] = []
    for name, file in (("team_holdout", "nlu_holdout.yml"),
                       ("natural_holdout", "nlu_natural_holdout.yml")):
        pairs = _read_nlu(DATA / file)
        print(f"understanding: parsing {len(pairs)} phrasings of {file}", flush=True)
        parses = parse([t for t, _ in pairs])
        report[name] = intent_scores(pairs, parses)
        in_scope += [p for (_, g), p in zip(pairs, parses, strict=True) if g not in REJECTED]
    oos = _oos_val()
    print(f"understanding: parsing {len(oos)} out-of-scope texts (CLINC150 oos_val)", flush=True)
    curve = rejection_curve(in_scope, parse(oos), ambiguity)
    report["out_of_scope"] = {
        "n_oos": len(oos), "n_in_scope": len(in_scope), "curve": curve,
        "at_config_threshold": min(curve, key=lambda r: abs(r["threshold"] - fallback_t))}
    spec = yaml.safe_load((DATA / "escalation_set.yml").read_text(encoding="utf-8"))
    conversations = spec["conversations"]
    print(f"understanding: {len(conversations)} escalation-set conversations", flush=True)
    turn_parses = parse([t for c in conversations for t in c["turns"]])
    parses_by_id, i = {}, 0
    for conv in conversations:
        parses_by_id[conv["id"]] = turn_parses[i: i + len(conv["turns"])]
        i += len(conv["turns"])
    report["escalation"] = escalation_scores(conversations, parses_by_id, negative_t,
                                             complaint_t)
    report["escalation_curve"] = [
        {"negative_threshold": t, **{k: v for k, v in escalation_scores(
            conversations, parses_by_id, t, complaint_t).items()
            if k in ("precision", "recall")}}
        for t in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)]
    with (DATA / "sentiment_cross_domain.csv").open(encoding="utf-8", newline="") as f:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(f)]
    report["sentiment_cross_domain"] = sentiment_scores(rows, parse([t for t, _ in rows]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_summary(report)
    return 0


def print_summary(r: dict[str, Any]) -> None:
    """The figures as a table (command-line output)."""
    line = "-" * 72
    print(line)
    for name in ("team_holdout", "natural_holdout"):
        s = r[name]
        print(f"intent {name:<16} n={s['n']:<4} accuracy {s['accuracy']:.3f}  "
              f"macro-F1 {s['macro_f1']:.3f}")
    o = r["out_of_scope"]
    print(f"out-of-scope: {o['n_oos']} CLINC150 oos_val texts vs {o['n_in_scope']} in-scope "
          f"(ambiguity threshold {r['ambiguity_threshold']})")
    print("  threshold  oos rejected  in-scope falsely rejected")
    for row in o["curve"]:
        mark = "  <- config.yml" if row is o["at_config_threshold"] or \
            row["threshold"] == o["at_config_threshold"]["threshold"] else ""
        print(f"  {row['threshold']:9.2f}  {row['oos_rejection']:12.3f}  "
              f"{row['in_scope_false_rejection']:25.3f}{mark}")
    e = r["escalation"]
    print(f"escalation set n={e['n']}: precision {e['precision']:.3f}  recall {e['recall']:.3f}"
          f"  (calm messages escalated: {e['calm_false_escalations']}/{e['calm_n']})")
    print("  negative threshold  precision  recall")
    for row in r["escalation_curve"]:
        mark = "  <- config.yml" if row["negative_threshold"] == r["negative_threshold"] else ""
        print(f"  {row['negative_threshold']:18.2f}  {row['precision']:9.3f}  "
              f"{row['recall']:6.3f}{mark}")
    s = r["sentiment_cross_domain"]
    print(f"sentiment, products and services n={s['n']}: accuracy {s['accuracy']:.3f}  "
          f"negative recall {s['negative_recall']:.3f}  precision {s['negative_precision']:.3f}")
    print(line)


if __name__ == "__main__":
    raise SystemExit(main())
