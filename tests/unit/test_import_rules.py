"""The package layering, read from the source with ``ast`` (every import, in functions too): the foundation
imports nothing else of CNET, each layer only what lies below it (directly or through what it imports), each
node process only the shared core and the layers, never another process, and heavy libraries load only
where they are used (what a program imports at start, followed through CNET's own modules). The controls:
each rule's checker finds a violation planted in a module's source."""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("cnetd", "ledger", "mesh", "workers", "inference", "gateway", "ui")
LAYERS = ("ledger", "mesh", "workers", "inference", "gateway")
BELOW_THE_NODE = ("cnetd.core", "cnetd.common", *LAYERS)

# Each layer, and the CNET packages or modules it may import (besides itself), directly or transitively.
# ``cnetd`` itself (its __init__: the version) is importable by every one of them.
ALLOWED = {
    "cnetd.common": (),  # the foundation: errors, HTTP, logs, paths, private files, model sources
    "cnetd.cli": ("cnetd.common",),  # a client of the API, nothing of the daemon
    "ledger": ("cnetd.common",),
    "mesh": ("cnetd.common", "ledger"),
    "inference": ("cnetd.common",),
    "gateway": ("cnetd.common",),
    "workers": ("cnetd.common", "ledger", "inference", "gateway"),
    "cnetd.core": ("cnetd.common", *LAYERS),  # what more than one node process needs
    "cnetd.launcher": BELOW_THE_NODE,  # cnetd: runs supervisord, which runs the processes below by name
    "cnetd.api": (*BELOW_THE_NODE, "ui"),
    "cnetd.scheduler": BELOW_THE_NODE,
    "cnetd.monitor": BELOW_THE_NODE,
    "cnetd.register": BELOW_THE_NODE,
}
NODE_PROGRAMS = ("cnetd.launcher.main", "cnetd.api.app", "cnetd.register.__main__", "cnetd.scheduler.__main__",
                 "cnetd.monitor.__main__")
SERVICE_PROGRAMS = ("inference.yolo_service", "inference.opencv_service", "gateway.server")
CLI_PROGRAMS = ("cnetd.cli.main",)
NOT_IN_NODE_PROCESSES = ("onnxruntime", "cv2", "torch", "tensorflow", "ai_edge_litert", "docker",
                         "botocore", "requests", "zmq.auth")  # the last three: memory an idle node need not hold
BEHIND_THE_API = ("cnetd.register.__main__", "cnetd.scheduler.__main__", "cnetd.monitor.__main__")
SUPERVISED_PROGRAMS = ("cnetd.api.app", *BEHIND_THE_API)
NOT_UNDER_SUPERVISORD = ("yaml", "sqlite3", "supervisor")  # the config is read as the JSON the launcher wrote
# (node.json); the data catalogue opens on its first use; supervisord is spoken to with xmlrpc.client alone
NOT_BEHIND_THE_API = ("psutil", "prometheus_client")  # the register, scheduler and monitor: host facts come from
# os and shutil, and counters are written with cnetd.common.metric_files
NOT_IN_THE_API_MASTER = ("prometheus_client", "psutil", "zmq")  # gunicorn's master serves no metrics, and reads
# only its runtime dir's paths
NOT_IN_THE_API_WORKER = ("psutil",)  # only a node bound to every interface lists the machine's addresses
NOT_IN_SERVICES = ("lmdb", "zmq", "supervisor", "docker")
NOT_IN_THE_CLI = ("lmdb", "zmq", "supervisor", "docker", "falcon", "cv2", "onnxruntime", "torch", "tensorflow")  # cv2: --draw only


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(path): path.read_text() for package in FIRST_PARTY for path in (REPO / package).rglob("*.py")}


@functools.lru_cache(maxsize=None)
def imports(source: str, at_start_only: bool = False) -> frozenset[str]:
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
    return frozenset(found)


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer_of(module: str) -> str | None:
    """The most specific layer ``module`` belongs to (``cnetd.core`` before ``cnetd``)."""
    return max((prefix for prefix in ALLOWED if _in(module, prefix)), key=len, default=None)


def _packages_of(module: str) -> list[str]:
    """The packages whose __init__ importing ``module`` runs first."""
    return [".".join(module.split(".")[:depth]) for depth in range(1, module.count(".") + 1)]


def reached(module: str, sources: dict[str, str]) -> dict[str, str]:
    """Every first-party module ``module`` imports, directly or through others, each with the module that
    imports it (to name the path in a violation)."""
    via: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in imports(sources.get(current, "")):
            if name.split(".")[0] in FIRST_PARTY and name not in via and name != module:
                via[name] = current
                todo.append(name)
    return via


def _allowed(layer: str, imported: str) -> bool:
    if imported == "cnetd" or _in(imported, layer) or any(_in(imported, ok) for ok in ALLOWED[layer]):
        return True
    return any(imported == package for package in _packages_of(layer))  # its own parents' __init__


def layering_violations(sources: dict[str, str]) -> list[str]:
    """Each module of a layer, and everything it reaches through CNET's own imports, stays within what the
    layer may import."""
    violations = []
    for module in sources:
        layer = _layer_of(module)
        if layer is None:
            continue
        for imported, importer in reached(module, sources).items():
            if not _allowed(layer, imported):
                path = "" if importer == module else f" (through {importer})"
                violations.append(f"{module} imports {imported}{path}")
    return violations


def loaded_at_start(program: str, sources: dict[str, str]) -> set[str]:
    """Every module importing ``program`` runs, CNET's own followed (with their packages' __init__)."""
    seen, todo = set(), [program]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in (*imports(sources.get(module, ""), at_start_only=True), *_packages_of(module)):
            if name.split(".")[0] in FIRST_PARTY:
                todo.append(name)
            else:
                seen.add(name)
    return seen


def heavy_violations(sources: dict[str, str]) -> list[str]:
    violations = []
    for programs, forbidden in ((NODE_PROGRAMS, NOT_IN_NODE_PROCESSES), (SERVICE_PROGRAMS, NOT_IN_SERVICES),
                                (CLI_PROGRAMS, NOT_IN_THE_CLI), (SUPERVISED_PROGRAMS, NOT_UNDER_SUPERVISORD),
                                (BEHIND_THE_API, NOT_BEHIND_THE_API),
                                (("cnetd.api.gunicorn_hooks",), NOT_IN_THE_API_MASTER),
                                (("cnetd.api.app",), NOT_IN_THE_API_WORKER)):
        for program in programs:
            loaded = loaded_at_start(program, sources)
            violations += [f"{program} loads {name} at start" for name in forbidden
                           if any(_in(module, name) for module in loaded)]
    return violations


def test_every_module_belongs_to_a_layer() -> None:
    assert [module for module in SOURCES if _layer_of(module) is None and module not in ("cnetd", "ui")] == []


def test_each_layer_imports_only_what_lies_below_it() -> None:
    assert layering_violations(SOURCES) == []


def test_heavy_libraries_load_only_where_they_are_used() -> None:
    assert heavy_violations(SOURCES) == []


@pytest.mark.parametrize("module, planted", [
    ("cnetd.common.errors", "from cnetd.core.config import NodeConfig"),
    ("cnetd.cli.views", "from ledger.records import Resources"),
    ("ledger.store", "def later():\n    from cnetd.scheduler.scheduler import Scheduler"),
    ("mesh.messages", "import workers.base"),
    ("inference.service", "from gateway.keys import open_inside"),
    ("gateway.app", "import inference.detector"),
    ("workers.base", "import cnetd.api.app"),
    ("workers.base", "from cnetd.core.config import NodeConfig"),
    ("cnetd.core.lifecycle", "from cnetd.monitor.health import healthy"),
    ("cnetd.launcher.main", "from cnetd.scheduler.placement import rank"),
    ("cnetd.api.base", "from cnetd.monitor.health import healthy"),
    ("cnetd.api.workloads", "from cnetd.scheduler.delegation import FORWARD_TIMEOUT_S"),
    ("cnetd.scheduler.scheduler", "from cnetd.api.balancer import Balancer"),
    ("cnetd.monitor.health", "import cnetd.register.discovery"),
    ("cnetd.register.discovery", "from cnetd.scheduler.models.store import ModelStore"),
])
def test_the_layering_check_finds_a_planted_violation(module: str, planted: str) -> None:
    assert layering_violations({**SOURCES, module: SOURCES[module] + "\n" + planted + "\n"}) != []


def test_the_layering_check_follows_imports_through_other_modules() -> None:
    """The control for transitive checks: the scheduler imports the core, which is allowed; a core module
    that then imports the monitor makes the scheduler reach it, named with the module it went through."""
    planted = {**SOURCES, "cnetd.core.lifecycle": SOURCES["cnetd.core.lifecycle"] + "\nimport cnetd.monitor.health\n"}
    found = layering_violations(planted)
    assert any(line.startswith("cnetd.scheduler.") and "cnetd.monitor.health (through cnetd.core.lifecycle)" in line
               for line in found), found


@pytest.mark.parametrize("module, planted", [
    ("workers.registry", "import onnxruntime"),  # the scheduler imports the registry
    ("inference.service", "from ledger.store import Ledger"),  # lmdb in a service
    ("cnetd.cli.views", "import cv2"),  # OpenCV at the CLI's every start
    ("cnetd.core.supervisor_rpc", "from supervisor.xmlrpc import Faults"),  # supervisor's xmlrpc, idle memory
    ("cnetd.api.gunicorn_hooks", "from prometheus_client import multiprocess"),  # metrics in the master
    ("cnetd.api.gunicorn_hooks", "from cnetd.core.config import NodeConfig"),  # psutil and zmq in the master
    ("cnetd.core.hostinfo", "import psutil"),  # psutil in every process that reads the config
    ("cnetd.api.guard", "import psutil"),  # psutil in the API worker of a node on one address
    ("mesh.rpc", "from prometheus_client import Counter"),  # prometheus_client in the scheduler
    ("cnetd.core.config", "import yaml"),  # YAML in every process under supervisord
    ("ledger.catalog", "import sqlite3"),  # SQLite in the scheduler and the API before any data
])
def test_the_heavy_library_check_finds_a_planted_violation(module: str, planted: str) -> None:
    assert heavy_violations({**SOURCES, module: SOURCES[module] + "\n" + planted + "\n"}) != []
