"""A polite answer when the action server is down or slow (bot env, Rasa 3.6).

Rasa 3.6 calls a custom action over HTTP (``RemoteAction.run``). When the action
server cannot be reached, answers with an error, or is slow, ``run`` raises and
the processor logs the exception, drops the action's events and says nothing:
the customer waits for an answer that never comes. Rasa has no setting for
this, and it waits up to 5 minutes for an answer (``DEFAULT_REQUEST_TIMEOUT``,
fixed in the code, not settable in ``endpoints.yml``).

:func:`install` wraps ``RemoteAction.run`` once, when the Rasa process imports
the ``bot`` package (the model's components, the event broker and the input
channels all do):

* the call gets a deadline, ``timeout`` of the ``action_endpoint`` in
  ``endpoints.yml`` (seconds, default :data:`DEFAULT_TIMEOUT`);
* an unreachable server, a timeout, an error status or a malformed answer
  becomes the ``utter_crm_unavailable`` response of the domain (through the NLG,
  so channel variants apply; :data:`FALLBACK_TEXT` if the domain has none),
  at most once per turn. The action is still logged as run, with no other
  events, so the next turn is predicted as after any action that changed
  nothing, and the customer can simply ask again;
* ``ActionExecutionRejection`` (a 400 from the action server: a form's
  validation rejecting its slot) is left alone: it means something to Rasa.

The same wrapper serves a form's ``validate_<form>`` call (the form then
apologises and asks for the slot again: the value is not taken unvalidated)
and custom slot mappings. A call that times out may still finish on the action
server (an interaction logged, a lead's status changed), so the deadline is
generous: it is for a server that hangs, not for a slow query.
"""

import asyncio
import functools
import importlib.abc
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "ACTION_MODULE",
    "DEFAULT_TIMEOUT",
    "FALLBACK_TEXT",
    "TIMEOUT_KEY",
    "UNAVAILABLE_RESPONSE",
    "action_timeout",
    "apology",
    "install",
    "resilient",
    "told_this_turn",
    "uninstall",
]

UNAVAILABLE_RESPONSE = "utter_crm_unavailable"
FALLBACK_TEXT = ("Sorry, I can't reach our systems right now. Please try again in a few "
                 "minutes; nothing you've said is lost.")
DEFAULT_TIMEOUT = 20.0  # seconds; Rasa's own is 300
TIMEOUT_KEY = "timeout"
_MARK = "_crm_resilient"
ACTION_MODULE = "rasa.core.actions.action"


def action_timeout(endpoint: Any) -> float:
    """The deadline of an action call: ``action_endpoint.timeout`` or the default."""
    raw = (getattr(endpoint, "kwargs", None) or {}).get(TIMEOUT_KEY)
    try:
        value = float(raw) if raw not in (None, "") else DEFAULT_TIMEOUT
    except (TypeError, ValueError):
        logger.warning("action_endpoint timeout %r is not a number; using %.0f s",
                       raw, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def told_this_turn(tracker: Any) -> bool:
    """Whether the apology was already said since the latest user message."""
    from rasa.shared.core.events import BotUttered, UserUttered

    for event in reversed(list(getattr(tracker, "events", None) or [])):
        if isinstance(event, UserUttered):
            return False
        if isinstance(event, BotUttered) and \
                (event.metadata or {}).get("utter_action") == UNAVAILABLE_RESPONSE:
            return True
    return False


async def apology(output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> list[Any]:
    """The ``utter_crm_unavailable`` message as events (none if already said this turn)."""
    from rasa.core.actions.action import ActionBotResponse
    from rasa.shared.core.events import BotUttered

    if told_this_turn(tracker):
        return []
    try:
        events = await ActionBotResponse(UNAVAILABLE_RESPONSE, silent_fail=True).run(
            output_channel, nlg, tracker, domain)
    except Exception:  # noqa: BLE001 - an NLG server may be down as well
        logger.warning("could not render %s; using the built-in text", UNAVAILABLE_RESPONSE,
                       exc_info=True)
        events = []
    return events or [BotUttered(FALLBACK_TEXT, metadata={"utter_action": UNAVAILABLE_RESPONSE})]


RunMethod = Callable[..., Awaitable[list[Any]]]


def resilient(run: RunMethod) -> RunMethod:
    """Wrap ``RemoteAction.run``: a deadline, and an apology instead of an exception."""
    from rasa.core.actions.action import ActionExecutionRejection

    @functools.wraps(run)
    async def wrapper(self: Any, output_channel: Any, nlg: Any, tracker: Any,
                      domain: Any) -> list[Any]:
        timeout = action_timeout(getattr(self, "action_endpoint", None))
        try:
            return await asyncio.wait_for(run(self, output_channel, nlg, tracker, domain),
                                          timeout)
        except ActionExecutionRejection:
            raise
        except asyncio.TimeoutError:
            logger.error("custom action '%s': no answer from the action server within %.0f s;"
                         " the user gets an apology", self.name(), timeout)
        except Exception as exc:  # noqa: BLE001 - any failure of the call, see the module doc
            # Rasa has logged the details of a connection error already.
            logger.error("custom action '%s' failed (%s: %s); the user gets an apology",
                         self.name(), type(exc).__name__, exc)
        return await apology(output_channel, nlg, tracker, domain)

    setattr(wrapper, _MARK, True)
    return wrapper


def _wrap(module: Any) -> None:
    remote = module.RemoteAction
    if not getattr(remote.run, _MARK, False):
        remote.run = resilient(remote.run)
        logger.debug("RemoteAction.run wrapped: apologies instead of silence")


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Wraps ``RemoteAction.run`` as soon as Rasa's action module is imported.

    Importing that module pulls in TensorFlow (15 s), which importing ``bot``
    must not do: the Rasa server has imported it long before, a unit test of a
    channel never needs it.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != ACTION_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_and_wrap(module: Any, run_module: Any = exec_module) -> None:
                    run_module(module)
                    _wrap(module)

                spec.loader.exec_module = exec_and_wrap  # type: ignore[method-assign]
                return spec
        return None


def install() -> bool:
    """Wrap ``RemoteAction.run`` once per process, now or when Rasa imports it.

    Returns:
        True if Rasa's action module was loaded and is wrapped now.
    """
    module = sys.modules.get(ACTION_MODULE)
    if module is not None:
        _wrap(module)
        return True
    if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    return False


def uninstall() -> None:
    """Restore Rasa's own ``RemoteAction.run`` (for tests)."""
    from rasa.core.actions.action import RemoteAction

    run: Any = RemoteAction.run
    if getattr(run, _MARK, False):
        RemoteAction.run = run.__wrapped__  # type: ignore[method-assign]
