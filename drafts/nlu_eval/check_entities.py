import sys, re, collections
from rasa.shared.nlu.training_data.loading import load_data
from rasa.nlu.utils.pattern_utils import extract_patterns
td = load_data(sys.argv[1])
pats = extract_patterns(td, use_only_entities=True, use_word_boundaries=True)
print("patterns:", [p["name"] for p in pats])
stats = collections.Counter()
for ex in td.intent_examples:
    text = ex.get("text")
    gold = {(e["entity"], e["start"], e["end"]) for e in ex.get("entities") or []}
    pred = []
    for p in pats:
        for m in re.finditer(p["pattern"], text, flags=re.I):
            pred.append((p["name"], m.start(), m.end()))
    ps = set(pred)
    if len(pred) != len(ps): print("DUP", text, pred)
    for g in gold - ps: stats["fn", g[0]] += 1; print("MISS", ex.get("intent"), "|", text, "|", g[0], text[g[1]:g[2]])
    for g in ps - gold: stats["fp", g[0]] += 1; print("EXTRA", ex.get("intent"), "|", text, "|", g[0], text[g[1]:g[2]])
    for g in ps & gold: stats["tp", g[0]] += 1
for k, v in sorted(stats.items()): print(k, v)
