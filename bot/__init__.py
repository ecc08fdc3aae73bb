"""Rasa-side code (bot env, Python 3.10): NLU components and input channels.

Importing the package (Rasa does, for the model's components, the event broker
and the channels) makes custom-action failures answer politely: see
:mod:`bot.resilience`.
"""

from bot.resilience import install as _install_resilience

_install_resilience()
