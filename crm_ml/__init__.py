"""crm_ml: the CRM data layer and the machine-learning models of the assistant.

The package never imports ``rasa`` or ``rasa_sdk``; the bot and the actions call it.
Heavy modules (pandas, SQLAlchemy, scikit-learn) are imported by the submodules
that need them, so that ``bot/`` can import the numpy-only parts in the bot env.
Other layers import the submodules (``crm_ml.sales``, ``crm_ml.support``...),
each of which lists in its ``__all__`` what they may use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
