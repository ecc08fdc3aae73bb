"""bot.quiet: the known library warnings are ignored, any other warning still shows."""

import warnings

import pytest
from pyparsing import PyparsingDeprecationWarning

from bot import quiet

KNOWN = [
    ("pkg_resources is deprecated as an API. See https://setuptools.pypa.io",
     DeprecationWarning, "rasa.shared.utils.validation"),
    ("Deprecated call to `pkg_resources.declare_namespace('ruamel')`.",
     DeprecationWarning, "pkg_resources"),
    ("distutils Version classes are deprecated. Use packaging.version instead.",
     DeprecationWarning, "sanic_cors.extension"),
    ("jax.xla_computation is deprecated. Please use the AOT APIs.",
     DeprecationWarning, "tensorflow.lite.python.util"),
    ("invalid escape sequence '\\{'", DeprecationWarning,
     "/x/.venv-bot/lib/python3.10/site-packages/keras/utils/vis_utils"),
    ("'setParseAction' deprecated - use 'set_parse_action'", PyparsingDeprecationWarning,
     "matplotlib.fontconfig_pattern"),
    ("The utterance 'utter_verified' is not used in any story or rule.", UserWarning,
     "rasa.shared.utils.io"),
    ("Calling URL() directly is deprecated and will be disabled in a future release.",
     DeprecationWarning, "rasa.core.tracker_store"),
]


def shown(message, category, module):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        warnings.filterwarnings("once", category=UserWarning)  # what Rasa's CLI adds
        quiet.install()
        warnings.warn_explicit(message, category, module.replace(".", "/") + ".py", 1,
                               module=module, registry={})
    return [str(w.message) for w in seen]


@pytest.mark.parametrize("message, category, module", KNOWN)
def test_known_library_warnings_are_ignored(message, category, module):
    assert shown(message, category, module) == []


def test_other_warnings_still_show():
    assert shown("invalid escape sequence '\\d'", DeprecationWarning, "bot.nlu") != []
    assert shown("something else is deprecated", DeprecationWarning, "rasa.core") != []
    assert shown("'setParseAction' deprecated - use 'set_parse_action'",
                 PyparsingDeprecationWarning, "bot.nlu") != []
