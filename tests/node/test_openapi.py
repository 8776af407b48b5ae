"""The published OpenAPI document is the API: every route and method is in it (and nothing else), and
schemathesis fuzzes a live node from it — with valid and invalid data, with and without the token: no 5xx,
every answer as documented — after which the ledger is consistent: everything allocated is a workload
that runs (or stored data)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection

from cnetd.api import openapi
from cnetd.api.app import ROUTES
from cnetd.core.deployment_spec import AutoscalePolicy, ReschedulePolicy
from tests.support.nodes import Node, held_by, running

TOKEN = "fuzz-token"
EXAMPLES = int(os.environ.get("CNET_FUZZ_EXAMPLES", "50"))  # per operation and mode: under a minute here
# Which statuses accept valid data and reject invalid data: as `schemathesis run` reads them.
CHECKS = SchemathesisConfig.from_path(str(Path(__file__).parents[2] / "schemathesis.toml"))
OPERATIONS = {result.ok().label: result.ok()
              for result in schemathesis.openapi.from_dict(openapi.document(), config=CHECKS).get_all_operations()}


def _operation(label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    return openapi.document()["paths"][path][method.lower()]


def _has_json_body(label: str) -> bool:
    return "application/json" in _operation(label).get("requestBody", {}).get("content", {})


def _constrained(label: str) -> bool:
    """Whether invalid data exists for an operation: a body, or a parameter that is not any string."""
    operation = _operation(label)
    return "requestBody" in operation or any(parameter["schema"] != {"type": "string"}
                                             for parameter in operation.get("parameters", []))


CASES = [(label, GenerationMode.POSITIVE) for label in sorted(OPERATIONS)] + \
        [(label, GenerationMode.NEGATIVE) for label in sorted(OPERATIONS) if _constrained(label)]


@pytest.fixture(scope="module")
def fuzz_node() -> Iterator[Node]:
    with running(Node({"cpu": 4, "memory": 4 * 2**30, "gpu": 0, "storage": 2**30}, token=TOKEN,
                      api={"max_body_bytes": 65536}, replicas={"max": 2})) as node:
        yield node


def test_document_lists_exactly_the_routes_and_methods(fuzz_node: Node) -> None:
    served = {path: {name[3:] for name in dir(resource) if name.startswith("on_")} for path, resource in ROUTES}
    documented = {path: set(item) - {"parameters"} for path, item in openapi.document()["paths"].items()}
    assert documented == served
    assert fuzz_node.api("GET", "/api/openapi.json").json() == openapi.document()


REAL_THINGS = {  # kind → how to make one
    "process": lambda node: node.submit({"command": "sleep", "args": ["300"]}, {"cpu": 0.1}),
    "service": lambda node: node.submit({"cascade_type": "face"}, {"cpu": 0.5}, workload_type="opencv"),
    "deployment": lambda node: node.submit({"cascade_type": "face"}, {"cpu": 0.1}, workload_type="opencv",
                                           replicas=1),
    "data": lambda node: node.api("POST", "/api/workloads", files=[("file", ("fuzz.txt", b"fuzz"))],
                                  data={"type": "data"}),
}


@pytest.fixture(scope="module")
def real_things(fuzz_node: Node) -> Iterator[dict[str, str]]:
    """One of each real thing, kept across the module's operations (made again when fuzzing ended one):
    making them for each operation took a third of the module's time. Removed at the module's end."""
    kept: dict[str, str] = {}
    yield kept
    for workload_id in kept.values():
        fuzz_node.api("DELETE", f"/api/workloads/{workload_id}")


def _still_there(node: Node, kind: str, workload_id: str) -> bool:
    answer = node.api("GET", f"/api/workloads/{workload_id}")
    return answer.ok and (kind == "data" or answer.json()["status"] in ("running", "starting", "degraded"))


def _real(node: Node, kept: dict[str, str], kind: str) -> str:
    if kind in kept and _still_there(node, kind, kept[kind]):
        return kept[kind]
    if kind in kept:
        node.api("DELETE", f"/api/workloads/{kept[kind]}")
    made = REAL_THINGS[kind](node).json()
    kept[kind] = made["data_key"] if kind == "data" else made["id"]
    return kept[kind]


@pytest.fixture
def real_ids(fuzz_node: Node, real_things: dict[str, str], request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Path parameters that name real things (a process, a model service, a deployment of replicas, stored
    data), so that fuzzing reaches past the 404s of random ids."""
    label = request.node.callspec.params["label"]
    ids: dict[str, list[str]] = {}
    if "{workload_id}" in label:
        ids["workload_id"] = [_real(fuzz_node, real_things, kind) for kind in ("process", "service", "deployment")]
    if "{data_key}" in label:
        ids["data_key"] = [_real(fuzz_node, real_things, "data")]
    return ids


CROSS_FIELD_RULES = (("autoscale", "min_replicas", "max_replicas", AutoscalePolicy.min_replicas),
                     ("reschedule", "delay_s", "max_delay_s", ReschedulePolicy.delay_s))


def _breaks_a_rule_no_schema_states(body: Any) -> bool:
    """A bound above its maximum (autoscale.min_replicas over max_replicas, reschedule.delay_s over max_delay_s,
    the bound's default when only the maximum is given), also in a stream's inline detector: JSON Schema cannot
    compare two fields, and the API refuses it with a 400 naming the field (as it does what the schema refuses),
    so it is not valid data."""
    if not isinstance(body, dict):
        return False
    for section, low, high, low_default in CROSS_FIELD_RULES:  # a maximum given alone meets the default bound
        given = body.get(section)
        if isinstance(given, dict) and high in given and given.get(low, low_default) > given[high]:
            return True
    config = body.get("config")
    inline = config.get("detector") if isinstance(config, dict) else None
    return isinstance(inline, dict) and _breaks_a_rule_no_schema_states(inline)  # a stream's own detector


@pytest.mark.parametrize("label, mode", CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_api_answers_as_documented(fuzz_node: Node, real_ids: dict[str, list[str]], label: str,
                                   mode: GenerationMode) -> None:
    # Every check, as `--checks all`: valid data is accepted (or meets a documented 409 / 422), invalid data
    # gets a 4xx; negative_data_rejection only judges invalid data.
    excluded = [] if mode == GenerationMode.NEGATIVE else [negative_data_rejection]
    operation = OPERATIONS[label]
    cases = st.one_of([operation.as_strategy(mode)] + [operation.as_strategy(mode, path_parameters={name: value})
                                                       for name, values in real_ids.items() for value in values])
    if mode == GenerationMode.POSITIVE:
        cases = cases.filter(lambda case: not _breaks_a_rule_no_schema_states(case.body))
    if mode == GenerationMode.NEGATIVE and _has_json_body(label):
        # Multipart cannot carry most invalid values (an object field arrives as the text "{}", an empty
        # list as no field at all): invalid bodies are checked in JSON.
        cases = cases.filter(lambda case: case.media_type == "application/json")

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def exchange(case: Any) -> None:
        # Changes both with and without the token: refusals must be documented 401s.
        with_token = case.method == "GET" or len(repr(case.body)) % 4 != 0
        headers = {"Authorization": f"Bearer {TOKEN}"} if with_token else {}
        response = case.call_and_validate(base_url=fuzz_node.url, headers=headers, excluded_checks=excluded)
        if response.status_code == 201 and case.path == "/api/workloads":
            fuzz_node.api("DELETE", f"/api/workloads/{response.json()['id']}")  # keep the node from filling up

    exchange()


def test_ledger_is_consistent_after_fuzzing(fuzz_node: Node) -> None:
    workloads = fuzz_node.workloads()
    allocated = fuzz_node.resources()["allocated"]
    assert allocated == pytest.approx(held_by(workloads)), (allocated, workloads)
    programs = fuzz_node.supervisorctl("status").splitlines()
    for workload in workloads:
        if workload["status"] == "running":
            assert any(f"wl-{workload['id']}" in line and "RUNNING" in line for line in programs), programs
