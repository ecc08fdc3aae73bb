"""Known, harmless library warnings kept out of the Rasa process's output (bot env).

Rasa 3.6 pins old libraries (SQLAlchemy 1.4, TensorFlow 2.12, Keras, sanic 21)
that warn about their own deprecations on every start, and its validator warns
about every response only custom actions send: lines a newcomer takes for
errors, and none of them a problem of this project. :func:`install` ignores
exactly those warnings (each filter below names what it silences and why it is
harmless); any other warning still shows.

Two moments matter. Importing the ``bot`` package installs the filters (Rasa
imports it for the model's components, the channels and the event broker), so
the warnings of the server's start (the tracker store's engine) are quiet. But
most warnings fire while Rasa itself is imported, before it reads any
configuration, and sanic then puts a filter of its own in front
(``filterwarnings("once", DeprecationWarning)``) that ``PYTHONWARNINGS`` cannot
override. ``python -m bot <rasa arguments>`` (what ``scripts/run.sh`` runs,
see :func:`main`) is the ``rasa`` command with the filters installed after
sanic's and before the rest of Rasa is imported.
"""

import logging
import sys
import warnings
from typing import Any, List, Optional, Tuple, Type

logger = logging.getLogger(__name__)

__all__ = ["FILTERS", "install", "main"]

#: (message regex, category, module regex) of each warning ignored. Matching is
#: on the start of the message, case-insensitive, like ``-W``.
FILTERS: List[Tuple[str, Type[Warning], str]] = [
    # rasa.shared.utils.validation imports pkg_resources, which setuptools deprecates;
    # it still works with the setuptools the bot env pins.
    (r"pkg_resources is deprecated as an API", DeprecationWarning, ""),
    # pkg_resources registers old-style namespace packages (mpl_toolkits, ruamel,
    # google...) for TensorFlow and matplotlib; the packages import fine.
    (r"Deprecated call to `pkg_resources\.declare_namespace", DeprecationWarning, ""),
    # sanic_cors compares sanic versions with distutils' LooseVersion, which still works
    # on Python 3.10 (distutils goes in 3.12; the bot env is 3.10).
    (r"distutils Version classes are deprecated", DeprecationWarning, ""),
    # TensorFlow Lite's converter imports jax.xla_computation when jax is present;
    # Rasa never converts models to TF Lite.
    (r"jax\.xla_computation is deprecated", DeprecationWarning, ""),
    # Keras 2.12 docstrings hold backslashes (data_utils, vis_utils): compile-time
    # notices about docstrings, not about code that runs.
    (r"invalid escape sequence", DeprecationWarning, r".*/site-packages/"),
    # matplotlib 3.5 (pinned by Rasa) parses font patterns with pyparsing's camelCase
    # names, which pyparsing 3.1+ renamed; the old names remain as aliases. (Both a
    # UserWarning and a DeprecationWarning: Rasa's "once" filter for UserWarning would
    # show it, which is why main() puts ours back in front after Rasa's.)
    (r"'\w+' deprecated - use '\w+'", DeprecationWarning, r"matplotlib\."),
    # SQLAlchemy 1.4's notices about 2.0 (Rasa's tracker store builds its URL with
    # URL() and declares its tables the 1.4 way): the bot env pins SQLAlchemy < 2.
    (r"Calling URL\(\) directly is deprecated", DeprecationWarning, ""),
    (r"Deprecated API features detected", DeprecationWarning, ""),
    # Rasa's validator (rasa train, rasa data validate) names every response that no
    # story or rule names; here custom actions send them by name
    # (``utter_message(response=...)``), which it cannot see. The responses are checked
    # by tests/bot_env/test_data_validate.py and the action tests.
    (r"The utterance '\w+' is not used in any story or rule", UserWarning, r"rasa\."),
    # rasa train looks for a trainable entity extractor (DIET, CRF) when the data has
    # entity annotations and lookup tables; here RegexEntityExtractor reads both
    # (use_lookup_tables, use_regexes in config.yml) and the annotations document the
    # entities in examples. The conversation tests check the extracted entities.
    (r"You have defined training data consisting of entity examples", UserWarning, r"rasa\."),
    (r"You have defined training data consisting of lookup tables", UserWarning, r"rasa\."),
    # An old-style import hook of a Rasa dependency (six's meta-path importer):
    # importlib still calls load_module() on Python 3.10.
    (r"the load_module\(\) method is deprecated", DeprecationWarning, ""),
]


def install() -> None:
    """Put the filters of :data:`FILTERS` in front of the others (again, if already there)."""
    for message, category, module in FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the ``rasa`` command line (``argv``: its arguments) without the known warnings.

    sanic's filter is installed first (by importing it), then ours in front of
    it; Rasa's command line then adds its own (``once`` for every
    ``UserWarning``, which pyparsing's deprecations are too), after which ours
    go in front once more.
    """
    import sanic.app  # noqa: F401 - its filter first, so that ours come before it

    install()
    import rasa.__main__ as rasa_cli

    configure = rasa_cli.configure_logging_and_warnings

    def configure_then_quiet(*args: Any, **kwargs: Any) -> None:
        configure(*args, **kwargs)
        install()

    rasa_cli.configure_logging_and_warnings = configure_then_quiet
    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_cli.main()
