import gzip, json, re, collections, logging, sys
logging.disable(logging.WARNING)
from rasa.shared.nlu.training_data.loading import load_data
from rasa.nlu.utils.pattern_utils import extract_patterns
td = load_data(sys.argv[1]); pats = extract_patterns(td, use_only_entities=True)
d = json.load(gzip.open('/work/shared/datasets/clinc150_train_val.json.gz'))
texts = [t for t, _ in d['train'] + d['val'] + d['oos_train'] + d['oos_val']]
c = collections.Counter(); ex = collections.defaultdict(list)
for t in texts:
    for p in pats:
        for m in re.finditer(p['pattern'], t, re.I):
            c[p['name']] += 1
            if len(ex[p['name']]) < 6: ex[p['name']].append((m.group(0), t))
print(len(texts), 'CLINC sentences (other domains); spurious matches per entity:')
for k, v in c.most_common(): print(f'  {k}: {v}', ex[k][:6])
