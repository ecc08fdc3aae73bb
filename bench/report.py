"""The printed table of ``make bench`` (from the results dict written to results.json)."""

from __future__ import annotations

from typing import Any


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _ratio(a: Any, b: Any) -> str:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return f"{a / b:.2f}x"
    return "-"


def _rows(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["", title, line]
    out.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                         for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    out.append(line)
    for r in rows:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return out


def _load_rows(load: dict[str, Any]) -> list[list[str]]:
    ours, stock = load.get("ours", {}), load.get("stock", {})
    rows = []
    for c in ("c1", "c32"):
        n = c[1:]
        for label, path in (
                (f"messages/s, {n} user(s)", ("throughput_msgs_per_s",)),
                (f"p50 ms, {n}, all turns", ("latency_ms", "p50")),
                (f"p95 ms, {n}, all turns", ("latency_ms", "p95")),
                (f"p99 ms, {n}, all turns", ("latency_ms", "p99")),
                (f"p50 ms, {n}, turns without action", ("latency_ms_no_action", "p50")),
                (f"p50 ms, {n}, turns with a CRM action", ("latency_ms_action", "p50")),
                (f"Rasa CPU ms per turn, {n}", None),
                (f"cores busy, {n}: benchmark processes", ("cores_busy", "benchmark_processes")),
                (f"cores busy, {n}: rest of the machine", ("cores_busy", "everything_else")),
                (f"replies as scripted, {n}", ("replies_as_scripted",)),
                (f"errors, {n}", ("errors",))):
            if path is None:
                a = _cpu(ours.get(c)), _cpu(stock.get(c))
            else:
                a = _get(ours, c, *path), _get(stock, c, *path)
            ratio = _ratio(*a) if "messages" in label or " ms" in label else ""
            digits = 3 if "scripted" in label else 2 if "cores" in label else 1
            rows.append([label, _fmt(a[0], digits), _fmt(a[1], digits), ratio])
    return rows


def _cpu(phase: dict[str, Any] | None) -> float | None:
    for name, v in ((phase or {}).get("cpu_ms_per_turn") or {}).items():
        if name.startswith("rasa"):
            return v
    return None


def table(r: dict[str, Any]) -> str:
    out: list[str] = []
    meta = r.get("meta", {})
    out.append(f"make bench: {meta.get('started_at')}, commit {meta.get('commit')} "
               f"({meta.get('dirty_files')} files changed), {meta.get('cpus')} CPUs, "
               f"load average {meta.get('loadavg_at_start')} -> {meta.get('loadavg_at_end')}, "
               f"{meta.get('seconds')} s{' (QUICK)' if meta.get('quick') else ''}")
    load = r.get("load", {})
    if "prod" in load:
        out += _rows("Single process, production endpoints (SQL tracker store in SQLite, "
                     "CRM event broker); stock = Rasa's default config served by stock Rasa",
                     ["", "ours", "stock", "ours/stock"], _load_rows(load["prod"]))
    plain = load.get("prod", {}).get("ours_rasa_paths")
    if plain:
        out += _rows("What the serving changes add (bot/speedups.py, bot/tracker_store.py): "
                     "ours, same model, served by Rasa's own code paths",
                     ["", "ours", "Rasa's paths", "ratio"],
                     _load_rows({"ours": load["prod"].get("ours", {}), "stock": plain}))
    if "memory" in load:
        out += _rows("Single process, in-memory tracker store, no event broker",
                     ["", "ours", "stock", "ours/stock"], _load_rows(load["memory"]))
    rss = r.get("peak_rss_mb", {})
    if rss:
        out += _rows("Peak memory (VmHWM, MiB)", ["process", "MiB"],
                     [[k, _fmt(v)] for k, v in rss.items()])
    nlu = r.get("nlu", {})
    rows = []
    for label, path in (("intent macro-F1, held-out NLU", ("holdout", "macro_f1")),
                        ("intent accuracy, held-out NLU", ("holdout", "accuracy")),
                        ("held-out texts", ("holdout", "n")),
                        ("intent macro-F1, conversation-test texts", ("story_texts", "macro_f1")),
                        ("intent accuracy, conversation-test texts", ("story_texts", "accuracy")),
                        ("conversation-test texts", ("story_texts", "n")),
                        ("NLU parse p50 ms (/model/parse)",
                         ("holdout", "parse_latency_ms", "p50"))):
        rows.append([label, _fmt(_get(nlu, "ours", *path), 3), _fmt(_get(nlu, "stock", *path), 3)])
    ct = r.get("conversation_tests", {})
    if ct:
        for label, key in (("conversation tests: conversations correct", "conversations_correct"),
                           ("conversation tests: conversation accuracy", "conversation_accuracy"),
                           ("conversation tests: action accuracy", "action_accuracy")):
            rows.append([label, _fmt(_get(ct, "ours", key), 3), _fmt(_get(ct, "stock", key), 3)])
    tr = r.get("rasa_training", {})
    rows.append(["rasa train, s" + (" (stock: cached)" if tr.get("stock_from_cache") else ""),
                 _fmt(tr.get("ours_s")), _fmt(tr.get("stock_s"))])
    out += _rows("Accuracy (same held-out data) and training", ["", "ours", "stock"], rows)

    prof = r.get("node_profile", {})
    if prof and all("nodes" in (prof.get(b) or {}) for b in ("ours", "stock")):
        rows = [["turn wall time, in-process, no persistence",
                 _fmt(prof["ours"]["wall_ms_per_turn"], 2),
                 _fmt(prof["stock"]["wall_ms_per_turn"], 2)],
                ["  inside the graph (NLU + policies)", _fmt(prof["ours"]["graph_ms_per_turn"], 2),
                 _fmt(prof["stock"]["graph_ms_per_turn"], 2)],
                ["  outside the graph (Rasa's own work)",
                 _fmt(prof["ours"]["outside_graph_ms_per_turn"], 2),
                 _fmt(prof["stock"]["outside_graph_ms_per_turn"], 2)]]
        for bot in ("ours", "stock"):
            for name, n in list(prof[bot]["nodes"].items())[:6]:
                label = name.removeprefix("run_").rstrip("0123456789")
                cells = [_fmt(n["ms_per_turn"], 2), ""] if bot == "ours" else \
                    ["", _fmt(n["ms_per_turn"], 2)]
                rows.append([f"  {bot}: {label} (x{n['calls_per_turn']:g})", *cells])
        out += _rows("Milliseconds per turn by graph node (in-process, FAQ turns)",
                     ["", "ours", "stock"], rows)

    nl = r.get("nlu_latency", {})
    if "parse" in nl:
        rows = [["NLU parse p50 with the encoder (int8)",
                 _fmt(nl["parse"]["p50_ms_with_encoder"], 2), ""],
                ["NLU parse p50, encoder vectors precomputed",
                 _fmt(nl["parse"]["p50_ms_without_encoder"], 2), ""]]
        for runtime, e in nl.get("encode", {}).items():
            rows.append([f"encoder {runtime}: one message", _fmt(e["p50_ms"], 2),
                         f"cosine min {e['min_cosine']:.4f}"])
        out += _rows("Sentence encoder (ours, in-process, held-out customer phrasings)",
                     ["", "ms", ""], rows)

    sc = r.get("scaling")
    if sc:
        rows = []
        for name in ("one_process_direct", "one_process", "two_processes",
                     "two_processes_sticky"):
            s = sc.get(name, {})
            rasa_ms = sum(v for k, v in (s.get("cpu_ms_per_turn") or {}).items()
                          if k.startswith("rasa") and v)
            rows.append([name.replace("_", " "), _fmt(s.get("throughput_msgs_per_s")),
                         _fmt(_get(s, "latency_ms", "p50")), _fmt(_get(s, "latency_ms", "p95")),
                         _fmt(s.get("errors")), _fmt(rasa_ms),
                         _fmt(_get(s, "cores_busy", "benchmark_processes"), 2),
                         _fmt(_get(s, "cores_busy", "postgres_and_redis"), 2),
                         _fmt(_get(s, "cores_busy", "everything_else"), 2)])
        out += _rows("Scaling, 32 users: tracker store and CRM on PostgreSQL, Redis lock store, "
                     "HAProxy (leastconn); cores busy: this benchmark's processes / "
                     "PostgreSQL+Redis / "
                     "the rest of the shared machine",
                     ["", "msgs/s", "p50 ms", "p95 ms", "errors", "Rasa CPU ms/turn",
                      "cores: bench", "cores: pg+redis", "cores: other"], rows)
        oc, st = sc.get("order_check_replies", {}), sc.get("order_check_stored", {})
        out.append(f"two processes / one: {_fmt(r.get('two_process_ratio'), 2)}x (vs one "
                   f"without HAProxy: {_fmt(r.get('two_process_ratio_vs_direct'), 2)}x); requests "
                   f"per process {sc.get('requests_per_process')}; senders {oc.get('senders')}, "
                   f"turns out of order {oc.get('turns_out_of_order')}, not as scripted "
                   f"{oc.get('turns_not_as_scripted')}, stored out of order "
                   f"{st.get('senders_stored_out_of_order_or_missing')}")
        ceil = _get(r, "cpu_ceilings", "scaling_c32") or {}
        out.append(f"sticky (sender hash) / leastconn: {_fmt(r.get('sticky_ratio'), 2)}x; "
                   f"capacity: {_fmt(ceil.get('msgs_per_s_per_rasa_core'))} msgs/s per Rasa "
                   f"core, {_fmt(ceil.get('msgs_per_s_per_core_all_processes'))} per core for "
                   f"everything a turn costs; CPU-time ceiling of this machine's "
                   f"{_fmt(_get(r, 'cpu_ceilings', 'cores'))} cores: one process "
                   f"{_fmt(ceil.get('one_process_ceiling_msgs_per_s'))}, two "
                   f"{_fmt(ceil.get('two_processes_ceiling_msgs_per_s'))} msgs/s")

    rows = []
    ld = r.get("crm_load")
    if ld:
        rows.append(["load: rows/s (prepare + insert, SQLite)", _fmt(ld.get("rows_per_s")), ""])
    ts = r.get("crm_training_s")
    if ts:
        for k, v in ts.items():
            rows.append([f"training {k}, s", _fmt(v), ""])
    scg = r.get("scoring")
    if scg:
        rows.append(["lead scoring, leads/s (LeadScorer / plain sklearn Pipeline)",
                     _fmt(scg.get("lead_scorer_leads_per_s")),
                     _fmt(scg.get("plain_pipeline_leads_per_s"))])
        rows.append(["lead scoring with reasons, leads/s",
                     _fmt(scg.get("lead_scorer_with_reasons_leads_per_s")), ""])
    fc = r.get("forecasting")
    if fc:
        ours = fc.get("ours_sarimax_fourier", {})
        for peer in ("pmdarima_auto_arima", "pmdarima_auto_arima_fourier"):
            p = fc.get(peer)
            if isinstance(p, dict):
                rows.append([f"forecast backtest s (ours / {peer})", _fmt(ours.get("seconds")),
                             _fmt(p.get("seconds"))])
                rows.append([f"forecast backtest MAPE % (ours / {peer})", _fmt(ours.get("mape")),
                             _fmt(p.get("mape"))])
        rows.append(["seasonal naive MAPE %", _fmt(fc.get("seasonal_naive_mape")), ""])
    if rows:
        out += _rows("crm_ml", ["", "ours", "baseline"], rows)

    ceil = r.get("cpu_ceilings", {})
    rows = []
    for variant in ("prod_c32", "memory_c32"):
        c = ceil.get(variant)
        if c:
            rows.append([f"{variant}: ours / stock msgs/s ceiling",
                         f"{_fmt(c['ours_ceiling_msgs_per_s'])} / "
                         f"{_fmt(c['stock_ceiling_msgs_per_s'])}", f"{c['ratio_ceiling']}x"])
    c = ceil.get("scaling_c32")
    if c:
        rows.append(["scaling: two / one process msgs/s ceiling",
                     f"{_fmt(c['two_processes_ceiling_msgs_per_s'])} / "
                     f"{_fmt(c['one_process_ceiling_msgs_per_s'])}", f"{c['ratio_ceiling']}x"])
    if rows:
        out += _rows(f"Ceilings from measured CPU per turn, were the {ceil.get('cores')} cores "
                     "idle (one Rasa process = one core)", ["", "msgs/s", "ratio"], rows)

    targets = r.get("targets", {})
    if targets:
        out += _rows("Targets (issue 6)", ["target", "value", "met"],
                     [[k, _fmt(v["value"], 3), _fmt(v["met"])] for k, v in targets.items()])
    return "\n".join(out)
