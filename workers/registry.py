"""The executors by workload type: adding a type is one module and one line here."""
from __future__ import annotations

from cnetd.common.errors import Invalid
from workers.base import Executor, NodeContext
from workers.container import ContainerExecutor
from workers.process import ProcessExecutor
from workers.datagateway import DataGatewayExecutor
from workers.mlmodel import YoloExecutor
from workers.opencv import OpenCVExecutor
from workers.stream import StreamExecutor

EXECUTORS: dict[str, Executor] = {executor.type_name: executor for executor in (
    ProcessExecutor(), YoloExecutor(), OpenCVExecutor(), DataGatewayExecutor(), ContainerExecutor(), StreamExecutor(),
)}


def executor_for(workload_type: str) -> Executor:
    try:
        return EXECUTORS[workload_type]
    except KeyError:
        raise Invalid(f"unknown workload type {workload_type!r} (supported: {', '.join(sorted(EXECUTORS))})",
                      supported=sorted(EXECUTORS)) from None


def node_features(node: NodeContext) -> dict[str, str | None]:
    """Every feature this node's executors know (``Executor.feature`` names): None when offered here, else why
    not; for placement here and, those offered, in its heartbeat. It may probe (a container engine): never
    on a request's path."""
    return dict(sorted(item for executor in EXECUTORS.values() for item in executor.features(node).items()))
