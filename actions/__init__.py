"""Custom actions of the assistant, one module per domain.

The rasa-sdk executor imports this package and registers every concrete
``Action`` subclass it finds in the modules below. Importing it also masks
personal data (e-mails, phone and card numbers) in the action server's logs.

Domain modules (``account``, ``analytics``, ``customers``, ``handoff``,
``leads``, ``orders``, ``support``) hold the actions and import none of each
other; what they share lives below them: :mod:`actions.speech` (words for
numbers, dates, lists, products), :mod:`actions.crm` (the one CRM call),
:mod:`actions.parsing` (entities and the user's words), :mod:`actions.gate`
(the customer gate and the staff permission check), :mod:`actions.identity`
(who is talking) and :mod:`actions.tickets` (customer tickets). Replies are
domain responses (``domain/``); an action builds text itself only where the
reply is a list or a set of sentences of variable length, with a comment saying so.
"""

from actions import (  # noqa: E402
    account,
    analytics,
    customers,
    handoff,
    leads,
    orders,
    support,
)
from crm_ml.pii import install_log_masking

__all__ = ["account", "analytics", "customers", "handoff", "leads", "orders", "support"]

install_log_masking()
