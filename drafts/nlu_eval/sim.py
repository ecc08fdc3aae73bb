"""Fast approximation of the Rasa pipeline for data iteration (not the final number)."""
import os
import sys, re, collections, numpy as np
from rasa.shared.nlu.training_data.loading import load_data
from rasa.nlu.utils.pattern_utils import extract_patterns
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.metrics import f1_score, classification_report
from scipy.sparse import hstack, csr_matrix

td = load_data(sys.argv[1])
pats = extract_patterns(td, use_only_entities=False)
X_text = [e.get("text") for e in td.intent_examples]
y = np.array([e.get("intent") for e in td.intent_examples])
def tok(t):
    t = re.sub(r"[^\w#@&]+(?=\s|$)|(\s|^)[^\w#@&]+(?=[^0-9\s])|(?<=[^0-9\s])[^\w._~:/?#\[\]()@!$&*+,;=-]+(?=[^0-9\s])", " ", t)
    return t.lower().split()
def regex_feats(texts):
    return csr_matrix([[1.0 if re.search(p["pattern"], t, re.I) else 0.0 for p in pats] for t in texts])
def feats(fit, texts):
    toks = [" ".join(tok(t)) for t in texts]
    if fit:
        global w, c
        import os; V=os.environ.get("V","base")
        w = CountVectorizer(ngram_range=(1,2) if "wb" in V else (1,1), token_pattern=r"\S+", binary="bin" in V); c = CountVectorizer(analyzer="char_wb", ngram_range=(1,5) if "c15" in V else (2, 4), binary="bin" in V)
        return hstack([regex_feats(texts), w.fit_transform(toks), c.fit_transform(toks)]).tocsr()
    return hstack([regex_feats(texts), w.transform(toks), c.transform(toks)]).tocsr()
C = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
preds = np.empty(len(y), dtype=object)
for tr, te in StratifiedKFold(5, shuffle=True, random_state=int(os.environ.get("SEED","42"))).split(X_text, y):
    Xtr = feats(True, [X_text[i] for i in tr]); Xte = feats(False, [X_text[i] for i in te])
    clf = LogisticRegression(C=C, max_iter=200, class_weight="balanced", solver="lbfgs", tol=1e-4, random_state=42)
    clf.fit(Xtr, y[tr]); preds[te] = clf.predict(Xte)
print("macro F1 %.3f  acc %.3f" % (f1_score(y, preds, average="macro"), (preds == y).mean()))
rep = classification_report(y, preds, output_dict=True, zero_division=0)
worst = sorted((v["f1-score"], k) for k, v in rep.items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg"))
print(" ".join(f"{k}={f:.2f}" for f, k in worst[:12]))
if "-v" in sys.argv:
    for t, a, b in zip(X_text, y, preds):
        if a != b: print(a, "->", b, "|", t)
if "-r" in sys.argv:
    P = np.zeros((len(y), 0)); probs = {}
    top = np.empty(len(y)); name = np.empty(len(y), dtype=object); margin = np.empty(len(y))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=int(os.environ.get("SEED", "42"))).split(X_text, y):
        Xtr = feats(True, [X_text[i] for i in tr]); Xte = feats(False, [X_text[i] for i in te])
        clf = LogisticRegression(C=C, max_iter=200, class_weight="balanced", solver="lbfgs", tol=1e-4, random_state=42).fit(Xtr, y[tr])
        p = clf.predict_proba(Xte); o = np.argsort(-p, axis=1)
        top[te] = p[np.arange(len(te)), o[:, 0]]; margin[te] = top[te] - p[np.arange(len(te)), o[:, 1]]; name[te] = clf.classes_[o[:, 0]]
    ins = y != "out_of_scope"
    for thr in (0.3, 0.4, 0.5):
        for amb in (0.0, 0.05, 0.1):
            rej = (name == "out_of_scope") | (top < thr) | (margin < amb)
            print(f"CV thr={thr} amb={amb}: in-scope rejected {rej[ins].mean():.3f}, oos_train rejected {rej[~ins].mean():.3f}")
