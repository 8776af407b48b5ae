"""The executors by workload type: adding a type is one module and one line here."""
from __future__ import annotations

from cnetd.common.errors import Invalid
from workers.base import Executor
from workers.container import ContainerExecutor
from workers.process import ProcessExecutor
from workers.datagateway import DataGatewayExecutor
from workers.mlmodel import YoloExecutor
from workers.opencv import OpenCVExecutor

EXECUTORS: dict[str, Executor] = {executor.type_name: executor for executor in (
    ProcessExecutor(), YoloExecutor(), OpenCVExecutor(), DataGatewayExecutor(), ContainerExecutor(),
)}


def executor_for(workload_type: str) -> Executor:
    try:
        return EXECUTORS[workload_type]
    except KeyError:
        raise Invalid(f"unknown workload type {workload_type!r} (supported: {', '.join(sorted(EXECUTORS))})",
                      supported=sorted(EXECUTORS)) from None
