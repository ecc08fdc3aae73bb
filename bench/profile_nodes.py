"""Where a turn's time goes inside Rasa: milliseconds per graph node (bot env).

Loads a trained model in-process (in-memory tracker store, no action server),
plays scripted turns that need no custom action through
``Agent.handle_message`` and times every graph node (tokenizer, featurizers,
classifiers, each policy, the ensemble) with a wrapper around
``GraphNode.__call__``. What is left of the turn's wall time is Rasa's own
work around the graph (events, tracker, responses). Prints one JSON object,
or writes it to ``--out`` (Rasa itself may print).

Usage::

    .venv-bot/bin/python -m bench.profile_nodes MODEL.tar.gz [--turns 200] [--out FILE] \
        [--holdout tests/data/nlu_holdout.yml]
"""

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import defaultdict
from typing import Any

TEXTS = [
    "hi", "what are your delivery options", "how long does delivery take",
    "which payment methods do you accept", "what is your refund policy", "thanks", "bye",
    "are you a bot", "do you deliver abroad", "how do i reset my password",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    parser.add_argument("--holdout", help="also the intent macro-F1 on this NLU YAML file")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.engine.graph import GraphNode

    timings: dict[str, list[float]] = defaultdict(list)
    original = GraphNode.__call__

    def timed(self: GraphNode, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            timings[self._node_name].append(1000 * (time.perf_counter() - start))

    GraphNode.__call__ = timed  # type: ignore[method-assign]

    async def play() -> dict[str, Any]:
        agent = Agent.load(args.model)
        walls: list[float] = []
        for i in range(args.turns + 20):
            if i == 20:  # warm-up done
                timings.clear()
                walls.clear()
            text = TEXTS[i % len(TEXTS)]
            start = time.perf_counter()
            await agent.handle_message(UserMessage(text, CollectingOutputChannel(),
                                                   f"profile-{i // len(TEXTS)}"))
            walls.append(1000 * (time.perf_counter() - start))
        turns = len(walls)
        nodes = {name: {"calls_per_turn": round(len(v) / turns, 2),
                        "ms_per_turn": round(sum(v) / turns, 3)}
                 for name, v in sorted(timings.items(), key=lambda kv: -sum(kv[1]))}
        in_graph = sum(n["ms_per_turn"] for n in nodes.values())
        wall = sum(walls) / turns
        out = {"turns": turns, "wall_ms_per_turn": round(wall, 3),
               "graph_ms_per_turn": round(in_graph, 3),
               "outside_graph_ms_per_turn": round(wall - in_graph, 3), "nodes": nodes}
        if args.holdout:
            from sklearn.metrics import f1_score

            from bench.bot_tools import labelled_texts

            examples = labelled_texts(args.holdout)
            predicted = [((await agent.parse_message(ex["text"])).get("intent") or {})
                         .get("name") or "None" for ex in examples]
            truth = [ex["intent"] for ex in examples]
            out["holdout_macro_f1"] = round(float(f1_score(truth, predicted, average="macro",
                                                           zero_division=0)), 4)
        return out

    result = asyncio.run(play())
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh)
    else:
        json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
