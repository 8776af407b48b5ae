"""Executor of ``opencv`` workloads: OpenCV Haar cascades (faces, eyes, smiles) served over HTTP."""
from __future__ import annotations

from typing import Any

from cnetd.common.errors import Invalid
from inference.cascades import CASCADE_FILES
from ledger.records import WorkloadRecord
from workers.base import NodeContext, PlainProgram, ProgramSpec, config_schema, reject_unknown_fields
from workers.service_program import (SERVICE_FIELDS, SERVICE_SCHEMAS, WARMUP_FIELDS, WARMUP_SCHEMAS, service_spec,
                                     validate_service_fields, validate_warmup, warmup_arguments)


class OpenCVExecutor(PlainProgram):
    type_name = "opencv"
    replicable = True
    config_schema = config_schema({"cascade_type": {"enum": list(CASCADE_FILES), "description": "default face"},
                                   **SERVICE_SCHEMAS, **WARMUP_SCHEMAS})

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, ("cascade_type", *SERVICE_FIELDS, *WARMUP_FIELDS))
        cascade = config.get("cascade_type", "face")
        if not isinstance(cascade, str) or cascade not in CASCADE_FILES:
            raise Invalid(f"config.cascade_type: expected one of {', '.join(CASCADE_FILES)}, got {cascade!r}")
        return {"cascade_type": cascade, **validate_warmup(config), **validate_service_fields(config, node)}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        return service_spec(record, node, "inference.opencv_service",
                            ["--cascade", record.config["cascade_type"], f"--name={record.name}",
                             *warmup_arguments(record, node)])
