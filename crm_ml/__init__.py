"""crm_ml: the CRM data layer and the machine-learning models of the assistant.

The package never imports ``rasa`` or ``rasa_sdk``; the bot and the actions call it.
Heavy modules (pandas, SQLAlchemy, scikit-learn) are imported by the submodules
that need them, so that ``bot/`` can import the numpy-only parts in the bot env.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
