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
* Each call to the action server opens a new HTTP connection
  (``EndpointConfig.session`` makes a new ``aiohttp`` session, with its own
  connection pool, per request). The sessions here share one pool per event
  loop, so calls reuse kept-alive connections (idle ones are dropped after
  :data:`KEEPALIVE_S`, before the action server's own 5 s keep-alive ends).

Installed once by :func:`install`, which the REST channel and the tracker
store call when Rasa creates them, before it loads the model; idempotent.
"""

import asyncio
import logging
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import GraphNode
from rasa.engine.runner.dask import DaskGraphRunner

logger = logging.getLogger(__name__)

_installed = False
KEEPALIVE_S = 4.0


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

    rasa.core.processor.DaskGraphRunner = SequentialGraphRunner  # type: ignore[misc]
    _validator_built_once()
    _share_http_connections()
    _keep_parsed_rules()
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

    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]


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

    EndpointConfig.session = session  # type: ignore[method-assign]


def _keep_parsed_rules() -> None:
    import functools
    import json

    from rasa.core.policies.rule_policy import RulePolicy

    @functools.lru_cache(maxsize=16384)
    def rule_key_to_state(rule_key: Text) -> List[Dict[Text, Any]]:
        return json.loads(rule_key)

    RulePolicy._rule_key_to_state = staticmethod(rule_key_to_state)  # type: ignore[method-assign]
