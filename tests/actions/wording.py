"""What a reply says: a domain response rendered from domain/ as Rasa renders it.

Actions answer with domain responses and their variables; these helpers turn
such a message into its words, so that tests can check the sentence a user
reads or hears (the text a voice or chat channel receives).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DOMAIN = Path(__file__).resolve().parents[2] / "domain"  # one file per part, merged by Rasa
_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")  # rasa.core.nlg.interpolator's pattern


@functools.cache
def responses() -> dict[str, list[dict[str, Any]]]:
    """The responses of every file in domain/ by name."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(DOMAIN.glob("*.yml")):
        part = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        merged.update(part.get("responses") or {})
    return merged


def render(message: dict[str, Any]) -> str:
    """The words of a dispatcher message: its text, or its response filled in.

    The response's variation for any channel and without conditions is used, and
    ``{name}`` is filled from the message's variables as Rasa does.

    Args:
        message: One of ``CollectingDispatcher.messages``.

    Returns:
        The text the user gets.
    """
    if message.get("text") or not message.get("response"):
        return message.get("text") or ""
    variations = responses()[message["response"]]
    template = next(v["text"] for v in variations
                    if not v.get("channel") and not v.get("condition"))
    return _PLACEHOLDER.sub(lambda m: str(message[m.group(1)]), template)
