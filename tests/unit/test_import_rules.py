"""The package layering, read from the source with ``ast`` (every import, in functions too): the foundation
imports nothing else of CNET, each layer only what lies below it, and heavy libraries load only where
they are used (what a program imports at start, followed through CNET's own modules). The control: a
rule's checker finds a violation planted in a module's source."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("cnetd", "ledger", "mesh", "workers", "inference", "gateway", "ui")

# Each layer, and the CNET packages or modules it may import (besides itself).
ALLOWED = {
    "cnetd.common": (),
    "cnetd.cli": ("cnetd.common",),  # a client of the API, nothing of the daemon
    "ledger": ("cnetd.common",),
    "mesh": ("cnetd.common", "ledger"),
    "inference": ("cnetd.common",),
    "gateway": ("cnetd.common",),
    "workers": ("cnetd.common", "cnetd.paths", "cnetd.private_files", "cnetd.config", "cnetd.models.sources",
                "ledger", "inference", "gateway"),
}
NODE_PROGRAMS = ("cnetd.main", "cnetd.api.app", "cnetd.register", "cnetd.scheduler", "cnetd.monitor")
SERVICE_PROGRAMS = ("inference.yolo_service", "inference.opencv_service", "gateway.server")
CLI_PROGRAMS = ("cnetd.cli.main",)
NOT_IN_NODE_PROCESSES = ("onnxruntime", "cv2", "torch", "tensorflow", "ai_edge_litert", "docker")
NOT_IN_SERVICES = ("lmdb", "zmq", "supervisor", "docker")
NOT_IN_THE_CLI = ("lmdb", "zmq", "supervisor", "docker", "falcon", "cv2", "onnxruntime", "torch", "tensorflow")  # cv2: --draw only


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(path): path.read_text() for package in FIRST_PARTY for path in (REPO / package).rglob("*.py")}


def imports(source: str, at_start_only: bool = False) -> set[str]:
    """Modules ``source`` imports; ``at_start_only``: those run when it is imported (not in functions, not
    under ``if TYPE_CHECKING``)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names
                             if f"{node.module}.{alias.name}" in SOURCES)
            if at_start_only and (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
                    isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))):
                continue
            for field in ("body", "orelse", "handlers", "finalbody"):
                visit([child for child in getattr(node, field, []) if isinstance(child, ast.AST)])

    visit(ast.parse(source).body)
    return found


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layering_violations(sources: dict[str, str]) -> list[str]:
    violations = []
    for module, source in sources.items():
        layer = next((prefix for prefix in ALLOWED if _in(module, prefix)), None)
        if layer is None:
            continue
        for imported in imports(source):
            first_party = imported.split(".")[0] in FIRST_PARTY
            if first_party and not _in(imported, layer) and not any(_in(imported, ok) for ok in ALLOWED[layer]):
                violations.append(f"{module} imports {imported}")
    return violations


def loaded_at_start(program: str, sources: dict[str, str]) -> set[str]:
    """Every module importing ``program`` runs, CNET's own followed (with their packages' __init__)."""
    seen, todo = set(), [program]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:depth]) for depth in range(1, module.count(".") + 1)]
        for name in (*imports(sources.get(module, ""), at_start_only=True), *parents):
            if name.split(".")[0] in FIRST_PARTY:
                todo.append(name)
            else:
                seen.add(name)
    return seen


def heavy_violations(sources: dict[str, str]) -> list[str]:
    violations = []
    for programs, forbidden in ((NODE_PROGRAMS, NOT_IN_NODE_PROCESSES), (SERVICE_PROGRAMS, NOT_IN_SERVICES),
                                (CLI_PROGRAMS, NOT_IN_THE_CLI)):
        for program in programs:
            loaded = loaded_at_start(program, sources)
            violations += [f"{program} loads {name} at start" for name in forbidden
                           if any(_in(module, name) for module in loaded)]
    return violations


def test_each_layer_imports_only_what_lies_below_it() -> None:
    assert layering_violations(SOURCES) == []


def test_heavy_libraries_load_only_where_they_are_used() -> None:
    assert heavy_violations(SOURCES) == []


@pytest.mark.parametrize("module, planted, check", [
    ("cnetd.common.errors", "from cnetd.config import NodeConfig", layering_violations),
    ("ledger.store", "def later():\n    from cnetd.scheduler import Scheduler", layering_violations),
    ("workers.base", "import cnetd.api.app", layering_violations),
    ("workers.registry", "import onnxruntime", heavy_violations),  # the scheduler imports the registry
    ("inference.service", "from ledger.store import Ledger", heavy_violations),  # lmdb in a service
    ("cnetd.cli.views", "import cv2", heavy_violations),  # OpenCV at the CLI's every start
])
def test_the_checks_find_a_planted_violation(module: str, planted: str, check) -> None:
    assert check({**SOURCES, module: SOURCES[module] + "\n" + planted + "\n"}) != []
