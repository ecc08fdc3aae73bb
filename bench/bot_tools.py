"""Bot-env helpers of the benchmark (run with ``.venv-bot/bin/python -m bench.bot_tools``).

The app env has no YAML reader for Rasa's formats, so the benchmark asks the
bot env, with Rasa's own readers, for the labelled texts it evaluates on.
Prints one JSON object::

    {"holdout": [{"text", "intent"}, ...],      # the held-out NLU file
     "in_training": ["text", ...],              # held-out texts also in data/ (should be none)
     "stories": [{"text", "intent"}, ...],      # user texts of the conversation tests
     "stories_in_training": ["text", ...]}

Usage::

    python -m bench.bot_tools --holdout tests/data/nlu_holdout.yml --data data \
        [--stories tests/test_stories.yml]
"""

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def labelled_texts(nlu_file: Path) -> list[dict[str, str]]:
    """Plain texts (entity annotations removed) and intents of an NLU YAML file."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().read(str(nlu_file))
    return [{"text": m.get("text"), "intent": m.get("intent")}
            for m in data.intent_examples if m.get("text")]


def training_texts(data_dir: Path) -> set:
    """Every NLU example text under ``data_dir``, lower-cased."""
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_dict(training_data_paths=[str(data_dir)])
    return {(m.get("text") or "").strip().lower()
            for m in importer.get_nlu_data().training_examples}


def story_texts(stories_file: Path) -> list[dict[str, str]]:
    """User texts and their written intents in end-to-end test stories."""
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import (
        YAMLStoryReader,
    )

    out = []
    for step in YAMLStoryReader().read_from_file(str(stories_file)):
        for event in step.events:
            if isinstance(event, UserUttered) and event.text and event.intent_name:
                out.append({"text": event.text.strip(), "intent": event.intent_name})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--holdout", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--stories", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    holdout = labelled_texts(args.holdout)
    seen = training_texts(args.data)
    stories = story_texts(args.stories) if args.stories and args.stories.is_file() else []
    result = {
        "holdout": holdout,
        "in_training": [h["text"] for h in holdout if h["text"].strip().lower() in seen],
        "stories": stories,
        "stories_in_training": [s["text"] for s in stories
                                if s["text"].strip().lower() in seen],
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
