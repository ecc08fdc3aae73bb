"""Custom actions of the assistant, one module per domain.

The rasa-sdk executor imports this package and registers every concrete
``Action`` subclass it finds in the modules below.
"""

from actions import customers, handoff  # noqa: F401
