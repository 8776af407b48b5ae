"""The ledger records of the model cache (type ``model``, id ``model-<sha256>``): the scheduler writes them,
the API lists them at /api/models and serves their files to neighbours."""
from __future__ import annotations

from ledger.records import SETTLING_STATUSES, WorkloadRecord

MODEL_TYPE = "model"  # the ledger records' type
RECORD_ID_PREFIX = "model-"  # of every model record's id, a fetch's under way too: one range of the ledger's keys


def record_id(sha256: str) -> str:
    return f"{RECORD_ID_PREFIX}{sha256}"


def model_users(records: list[WorkloadRecord], sha256: str) -> list[str]:
    """The workloads (of ``records``, a node's) that use the model: any not finished, by id. A pointer uses it
    while its forward is not settled (``delegating``, ``unknown``): the node it went to may not have fetched it
    from here yet. Once settled, that node has its own copy, or the workload runs nowhere."""
    return sorted(record.id for record in records if record.type != MODEL_TYPE and not record.terminal
                  and (not record.remote or record.status in SETTLING_STATUSES)
                  and record.config.get("model_sha256") == sha256)
