"""Custom actions of the assistant, one module per domain.

The rasa-sdk executor imports this package and registers every concrete
``Action`` subclass it finds in the modules below. Importing it also masks
personal data (e-mails, phone and card numbers) in the action server's logs.
"""

from actions import (  # noqa: F401, E402
    account,
    analytics,
    customers,
    handoff,
    leads,
    orders,
    support,
)
from crm_ml.pii import install_log_masking

install_log_masking()
