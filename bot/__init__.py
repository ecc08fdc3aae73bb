"""Rasa-side code (bot env, Python 3.10): NLU components and input channels.

Importing the package (Rasa does, for the model's components, the event broker
and the channels) makes custom-action failures answer politely (see
:mod:`bot.resilience`) and keeps known, harmless library warnings out of the
output (see :mod:`bot.quiet`).
"""

from bot.quiet import install as _install_quiet
from bot.resilience import install as _install_resilience

# What Rasa's configuration names (config.yml, credentials.yml, endpoints.yml).
__all__ = ["broker", "channels", "nlu", "policy", "telegram", "tracker_store", "voice",
           "webchat"]

_install_quiet()
_install_resilience()
