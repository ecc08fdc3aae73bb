"""Cheaper versions of two things Rasa 3.6 redoes on every action call.

* Every prediction and every parse runs the model graph through
  ``DaskGraphRunner``, which derives the minimal sub-graph for the targets,
  rebuilds a dask graph, formats the inputs (the whole tracker) into a debug
  string and hands it to dask's scheduler: 11% of a loaded Rasa process, on top
  of the nodes' own work. :class:`SequentialGraphRunner` computes the order
  of the nodes once per set of targets and calls them in turn: same nodes,
  same inputs and outputs, same errors.
* ``RemoteAction._validate_action_result`` calls ``jsonschema.validate``, which
  checks the schema itself against the JSON-Schema meta-schema and builds a new
  validator each time: 50 ms per custom action call measured here at load,
  0.5 ms with one validator built once. Same schema, same ``ValidationError``
  and message on a bad response.

* ``RulePolicy`` parses each rule's JSON key again for every rule, every turn
  of the history and every prediction (``_rule_key_to_state`` is
  ``json.loads``). The parsed states are kept (read only; Rasa never changes
  them).
* ``RulePolicy`` checks every rule against every turn of the conversation
  (``_get_possible_keys``), though a rule of *n* turns can only fail on the
  last *n*: past the longest remaining rule the set no longer changes. The
  rules are checked here with their states parsed once, and the walk back
  stops there: same set of rules. It also formatted the whole state history
  into a string for a debug log line on every prediction; that now happens only
  when the debug log is on.
* Each prediction turns the whole conversation into states again
  (``Domain.states_for_tracker_history``: a fresh copy of the tracker replays
  every event, and the state is read off it before each action), three times
  a turn. :class:`_Walk` keeps, per tracker, the replayed copy and the states
  so far, and replays only the events added since. Events that rewrite the
  past (restarts, session starts, rewinds, a form's own actions, a new form)
  send the call back to Rasa's code. Same states, as fresh dictionaries.
* Each call to the action server opens a new HTTP connection
  (``EndpointConfig.session`` makes a new ``aiohttp`` session, with its own
  connection pool, per request). The sessions here share one pool per event
  loop, so calls reuse kept-alive connections (idle ones are dropped after
  :data:`KEEPALIVE_S`, before the action server's own 5 s keep-alive ends).

Installed once by :func:`install`, which the REST channel and the tracker
store call when Rasa creates them, before it loads the model; idempotent.
"""

import asyncio
import contextlib
import json
import logging
from typing import Any, Dict, Iterator, List, Optional, Text, Tuple

from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import GraphNode
from rasa.engine.runner.dask import DaskGraphRunner

__all__ = [
    "KEEPALIVE_S",
    "SequentialGraphRunner",
    "install",
    "rasa_originals",
]

logger = logging.getLogger(__name__)

_installed = False
KEEPALIVE_S = 4.0
# (owner, attribute) -> what Rasa had there, for :func:`rasa_originals`.
_ORIGINALS: Dict[Tuple[Any, Text], Any] = {}


_INHERITED = object()  # the attribute came from a base class


def _patch(owner: Any, name: Text, value: Any) -> None:
    _ORIGINALS.setdefault((owner, name), vars(owner).get(name, _INHERITED))
    setattr(owner, name, value)


def _put(owner: Any, name: Text, value: Any) -> None:
    if value is _INHERITED:
        delattr(owner, name)
    else:
        setattr(owner, name, value)


@contextlib.contextmanager
def rasa_originals() -> Iterator[None]:
    """Rasa's own code in place of the patches while inside (tests compare the two)."""
    patched = {key: vars(key[0])[key[1]] for key in _ORIGINALS}
    for (owner, name), original in _ORIGINALS.items():
        _put(owner, name, original)
    try:
        yield
    finally:
        for (owner, name), value in patched.items():
            _put(owner, name, value)


class SequentialGraphRunner(DaskGraphRunner):
    """Runs the graph's nodes in a fixed order, without dask (see the module docstring)."""

    def _plan(self, targets: Tuple[Text, ...]
              ) -> List[Tuple[Text, GraphNode, Tuple[Text, ...]]]:
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(targets)
        if plan is None:
            schema = self._graph_schema.minimal_graph_schema(list(targets))
            order: List[Text] = []
            seen: set = set()

            def visit(name: Text) -> None:
                if name in seen or name not in schema.nodes:
                    return
                seen.add(name)
                for parent in schema.nodes[name].needs.values():
                    visit(parent)
                order.append(name)

            for name in sorted(schema.nodes):
                visit(name)
            plan = [(name, self._instantiated_nodes[name],
                     tuple(schema.nodes[name].needs.values())) for name in order]
            plans[targets] = plan
        return plan

    def run(self, inputs: Optional[Dict[Text, Any]] = None,
            targets: Optional[List[Text]] = None) -> Dict[Text, Any]:
        """Runs the graph (see ``GraphRunner.run``)."""
        run_targets = tuple(targets if targets else self._graph_schema.target_names)
        plan = self._plan(run_targets)
        results: Dict[Text, Any] = {}
        for name, value in (inputs or {}).items():
            if isinstance(value, str) and value in self._graph_schema.nodes:
                raise GraphRunError(f"Input value '{value}' clashes with a node name.")
            results[name] = (name, value)
        try:
            for name, node, needs in plan:
                results[name] = node(*[results[parent] for parent in needs])
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e
        return dict(results[target] for target in run_targets)


def install() -> None:
    """Apply the patches above (unless ``CRM_RASA_SPEEDUPS`` is off); idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    from crm_ml.config import get_settings

    if not get_settings().rasa_speedups:
        logger.info("CRM_RASA_SPEEDUPS is off: Rasa's own code paths")
        return
    import rasa.core.processor

    _patch(rasa.core.processor, "DaskGraphRunner", SequentialGraphRunner)
    _validator_built_once()
    _share_http_connections()
    _keep_parsed_rules()
    _match_rules_from_the_end()
    _walk_each_tracker_once()
    logger.debug("Rasa speed-ups installed")


def _validator_built_once() -> None:
    from jsonschema import ValidationError
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator = validator_for(schema)(schema)

    def validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        try:
            validator.validate(result)
            return True
        except ValidationError as e:
            e.message += (
                ". Failed to validate Action server response from API, make sure your "
                "response from the Action endpoint is valid. For more information about "
                f"the format visit {DOCS_BASE_URL}/custom-actions"
            )
            raise e

    _patch(RemoteAction, "_validate_action_result", validate_action_result)


def _share_http_connections() -> None:
    import aiohttp
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

    connectors: Dict[int, Any] = {}

    def connector() -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside an event loop: a session of its own, as Rasa does
            return None
        shared = connectors.get(id(loop))
        if shared is None or shared.closed:
            shared = connectors[id(loop)] = aiohttp.TCPConnector(
                keepalive_timeout=KEEPALIVE_S, limit=100)
        return shared

    def session(self: EndpointConfig) -> aiohttp.ClientSession:
        auth = None
        if self.basic_auth:
            auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
        shared = connector()
        return aiohttp.ClientSession(
            headers=self.headers, auth=auth, connector=shared, connector_owner=shared is None,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT))

    _patch(EndpointConfig, "session", session)


def _keep_parsed_rules() -> None:
    import functools
    import json

    from rasa.core.policies.rule_policy import RulePolicy

    @functools.lru_cache(maxsize=16384)
    def rule_key_to_state(rule_key: Text) -> List[Dict[Text, Any]]:
        return json.loads(rule_key)

    _patch(RulePolicy, "_rule_key_to_state", staticmethod(rule_key_to_state))


def _match_rules_from_the_end() -> None:
    from rasa.core.policies.policy import Policy
    from rasa.core.policies.rule_policy import SHOULD_NOT_BE_SET, RulePolicy
    from rasa.shared.core.constants import PREVIOUS_ACTION
    from rasa.shared.nlu.constants import ACTION_NAME

    # A rule's states, last first: (has a previous action, [(sub-state, [(key, value)])]),
    # values as Rasa compares them (JSON lists back to tuples).
    RuleStates = List[Tuple[bool, List[Tuple[Text, List[Tuple[Text, Any]]]]]]

    def parse(rule_key: Text) -> RuleStates:
        out: RuleStates = []
        for state in reversed(json.loads(rule_key)):
            out.append((bool(state.get(PREVIOUS_ACTION)), [
                (kind, [(key, tuple(value) if isinstance(value, list) else value)
                        for key, value in sub_state.items()])
                for kind, sub_state in state.items()]))
        return out

    def last_action(rule: RuleStates) -> Optional[Text]:
        """The previous action a rule's last state requires, if it requires one."""
        for kind, items in rule[0][1]:
            if kind == PREVIOUS_ACTION:
                for key, value in items:
                    if key == ACTION_NAME and value and value != SHOULD_NOT_BE_SET:
                        return value
        return None

    def index_of(policy: RulePolicy, lookup: Dict[Text, Text]
                 ) -> Tuple[Dict[Text, RuleStates], Dict[Optional[Text], List[Text]]]:
        """The parsed rules, and their keys by the previous action their last state needs."""
        cache = policy.__dict__.setdefault("_crm_rule_index", {})
        entry = cache.get(id(lookup))
        if entry is None or entry[0] is not lookup or entry[1].keys() != lookup.keys():
            rules = {key: parse(key) for key in lookup}
            by_action: Dict[Optional[Text], List[Text]] = {}
            for key, rule in rules.items():
                by_action.setdefault(last_action(rule), []).append(key)
            entry = cache[id(lookup)] = (lookup, rules, by_action)
        return entry[1], entry[2]

    def matches(rule_state: List[Tuple[Text, List[Tuple[Text, Any]]]],
                conversation_state: Dict[Text, Any]) -> bool:
        # RulePolicy._does_rule_match_state, on the pre-parsed rule state
        for kind, items in rule_state:
            conversation_sub_state = conversation_state.get(kind, {})
            for key, value_from_rules in items:
                value = conversation_sub_state.get(key)
                if value_from_rules == SHOULD_NOT_BE_SET:
                    if value and value != SHOULD_NOT_BE_SET:
                        return False
                elif value_from_rules and value != value_from_rules:
                    return False
        return True

    def applicable(rule: RuleStates, turn_index: int, state: Dict[Text, Any]) -> bool:
        # RulePolicy._is_rule_applicable
        if turn_index >= len(rule):
            return True
        rule_has_previous_action, rule_state = rule[turn_index]
        has_previous_action = bool(state.get(PREVIOUS_ACTION))
        if not rule_has_previous_action and not has_previous_action:
            return True
        if not rule_has_previous_action or not has_previous_action:
            return False
        return matches(rule_state, state)

    def get_possible_keys(self: RulePolicy, lookup: Dict[Text, Text],
                          states: List[Dict[Text, Any]]) -> set:
        index, by_action = index_of(self, lookup)
        if not states:
            return set(lookup)
        # The last turn first: only rules that need no previous action or this one.
        action = (states[-1].get(PREVIOUS_ACTION) or {}).get(ACTION_NAME)
        possible = by_action.get(None, []) + (by_action.get(action, []) if action else [])
        reach = max((len(index[key]) for key in possible), default=0)
        for i, state in enumerate(reversed(states)):
            if i >= reach:  # every rule left is shorter: all of them stay
                break
            possible = [key for key in possible if applicable(index[key], i, state)]
            reach = max((len(index[key]) for key in possible), default=0)
        return set(possible)

    rule_logger = logging.getLogger("rasa.core.policies.rule_policy")

    def format_tracker_states(states: List[Dict]) -> Text:
        if rule_logger.isEnabledFor(logging.DEBUG):
            return Policy.format_tracker_states(states)
        return ""

    _patch(RulePolicy, "_get_possible_keys", get_possible_keys)
    _patch(RulePolicy, "format_tracker_states", staticmethod(format_tracker_states))


class _Walk:
    """Where the replay of one tracker's events for one domain got to (see the module docstring).

    Mirrors ``Domain.states_for_tracker_history`` step by step: ``replay`` is
    the copy that has seen the first ``seen`` events, ``states`` the states
    before each action so far, and the two loop variables of the rule-only
    variant.
    """

    __slots__ = ("replay", "seen", "first", "last", "loops", "states", "last_ml", "hidden",
                 "rule_only_data")

    def __init__(self, tracker: Any, rule_only_data: Optional[Dict[Text, Any]]) -> None:
        self.replay = tracker.init_copy()
        self.seen = 0
        self.first = self.last = None
        self.loops: set = set()
        self.states: List[Dict[Text, Any]] = []
        self.last_ml: Any = None
        self.hidden = False
        self.rule_only_data = rule_only_data

    def follows(self, events: Any, rule_only_data: Optional[Dict[Text, Any]]) -> bool:
        """Whether ``events`` still begin with what this walk has seen."""
        if rule_only_data != self.rule_only_data or len(events) < self.seen:
            return False
        return self.seen == 0 or (events[0] is self.first and events[self.seen - 1] is self.last)


def _walk_each_tracker_once() -> None:
    import copy
    import itertools

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        ActiveLoop,
        Restarted,
        SessionStarted,
        UserUtteranceReverted,
    )

    rasas = Domain.states_for_tracker_history
    rewrites = (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted)

    def step(domain: Domain, walk: _Walk, tracker: Any, hide_rule_turn: bool,
             ignore_rule_only_turns: bool, omit_unset_slots: bool,
             states: List[Dict[Text, Any]]) -> None:
        # the body of the loop in Domain.states_for_tracker_history
        if ignore_rule_only_turns:
            if not walk.hidden:
                walk.last_ml = domain._get_prev_action_sub_state(tracker)
            if not tracker.followup_action and not (
                    tracker.latest_action_name == tracker.active_loop_name):
                walk.hidden = hide_rule_turn
            if walk.hidden:
                return
        state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
        if ignore_rule_only_turns:
            domain._remove_rule_only_features(state, walk.rule_only_data)
            if states:
                domain._substitute_rule_only_user_input(state, states[-1])
            if walk.last_ml:
                state["prev_action"] = walk.last_ml
        states.append(domain._clean_state(state))

    def states_for_tracker_history(self: Domain, tracker: Any, omit_unset_slots: bool = False,
                                   ignore_rule_only_turns: bool = False,
                                   rule_only_data: Optional[Dict[Text, Any]] = None
                                   ) -> List[Dict[Text, Any]]:
        walks = tracker.__dict__.setdefault("_crm_walks", {})
        key = (id(self), omit_unset_slots, ignore_rule_only_turns)
        events = tracker.events
        walk = walks.get(key)
        if walk is None or not walk.follows(events, rule_only_data):
            walk = _Walk(tracker, copy.deepcopy(rule_only_data))
            new = tracker.applied_events()  # a fresh walk starts from what Rasa applies
            walk.loops = {e.name for e in events if isinstance(e, ActiveLoop) and e.name}
        else:
            new = list(itertools.islice(events, walk.seen, None))
            if any(isinstance(e, rewrites)
                   or (isinstance(e, ActiveLoop) and e.name and e.name not in walk.loops)
                   or (isinstance(e, ActionExecuted) and e.action_name in walk.loops)
                   for e in new):  # the past may read differently now: Rasa's way
                walks.pop(key, None)
                return rasas(self, tracker, omit_unset_slots, ignore_rule_only_turns,
                             rule_only_data)
        walks[key] = walk
        for event in new:
            if isinstance(event, ActionExecuted):
                step(self, walk, walk.replay, event.hide_rule_turn, ignore_rule_only_turns,
                     omit_unset_slots, walk.states)
            walk.replay.update(event)
        walk.seen = len(events)
        walk.first = events[0] if events else None
        walk.last = events[-1] if events else None
        # The state after the last event, on copies of the loop's variables.
        states = list(walk.states)
        step(self, copy.copy(walk), walk.replay, False, ignore_rule_only_turns,
             omit_unset_slots, states)
        # Callers change the states they get (e.g. drop the intent): fresh dictionaries.
        return [{kind: dict(sub) for kind, sub in state.items()} for state in states]

    _patch(Domain, "states_for_tracker_history", states_for_tracker_history)
