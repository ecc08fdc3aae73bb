"""Fixed wording the chat channels share (REST, web chat, Telegram): one home for it.

The phone has its own, spoken variants (:mod:`bot.voice`).
"""

import logging

logger = logging.getLogger(__name__)

__all__ = ["FAILED_REPLY"]

#: A message Rasa could not handle: the customer is asked to try again, nothing is lost.
FAILED_REPLY = ("Sorry, something went wrong on our side. Please try again in a moment; "
                "nothing you said is lost.")
