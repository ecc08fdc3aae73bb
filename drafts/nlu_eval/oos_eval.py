"""Parse oos_val and the in-scope holdout with a trained model; report rejection rates.

rejected = final intent is nlu_fallback (FallbackClassifier: top < threshold or
top1 - top2 < ambiguity) or out_of_scope (renamed to nlu_fallback by the bot).
"""
import asyncio, json, sys, re, logging
logging.disable(logging.WARNING)
from rasa.core.agent import Agent
from rasa.shared.nlu.training_data.loading import load_data

model, oos_path, hold_path = sys.argv[1:4]
agent = Agent.load(model)
oos = [e.get("text") for e in load_data(oos_path).intent_examples]
hold = [(e.get("text"), e.get("intent")) for e in load_data(hold_path).intent_examples]

async def parse(texts):
    return [await agent.parse_message(t) for t in texts]
r_oos = asyncio.run(parse(oos)); r_hold = asyncio.run(parse([t for t, _ in hold]))

def ranking(r):
    return [x for x in r["intent_ranking"] if x["name"] != "nlu_fallback"]

def rejected(r, thr, amb):
    rk = ranking(r)
    top = rk[0]
    if top["name"] == "out_of_scope": return True
    if top["confidence"] < thr: return True
    if len(rk) > 1 and top["confidence"] - rk[1]["confidence"] < amb: return True
    return False

print("model", model)
print(" thr  amb | oos_val rejected | holdout falsely rejected | holdout accuracy(accepted & right)")
for thr in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
    for amb in (0.0, 0.05, 0.1):
        o = sum(rejected(r, thr, amb) for r in r_oos)
        h = sum(rejected(r, thr, amb) for r in r_hold)
        acc = sum((not rejected(r, thr, amb)) and ranking(r)[0]["name"] == g for r, (_, g) in zip(r_hold, hold))
        print(f"{thr:4.2f} {amb:4.2f} | {o:3d}/{len(oos)} | {h:3d}/{len(hold)} | {acc:3d}/{len(hold)}")
# as-configured (what the live FallbackClassifier does)
fin_o = sum(r["intent"]["name"] in ("nlu_fallback", "out_of_scope") for r in r_oos)
fin_h = sum(r["intent"]["name"] in ("nlu_fallback", "out_of_scope") for r in r_hold)
raw_acc = sum(ranking(r)[0]["name"] == g for r, (_, g) in zip(r_hold, hold))
print(f"as configured: oos_val rejected {fin_o}/{len(oos)}, holdout falsely rejected {fin_h}/{len(hold)}, holdout top-1 accuracy (no fallback) {raw_acc}/{len(hold)}")
out = {"oos": [(t, r["intent"]["name"], ranking(r)[0]["name"], round(ranking(r)[0]["confidence"], 3)) for t, r in zip(oos, r_oos)],
       "hold": [(t, g, r["intent"]["name"], ranking(r)[0]["name"], round(ranking(r)[0]["confidence"], 3)) for (t, g), r in zip(hold, r_hold)]}
json.dump(out, open(model + ".preds.json", "w"), indent=1)
# entities on holdout
ents = []
for (t, g), r in zip(hold, r_hold): ents.append((t, [(e["entity"], e["value"]) for e in r["entities"]]))
json.dump(ents, open(model + ".ents.json", "w"), indent=1)
