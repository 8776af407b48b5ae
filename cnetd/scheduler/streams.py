"""A stream submitted here: its detector must be a model service or deployment this node knows (one it runs,
delegated, or deploys), and the stream is given this node's API and a signature to reach it with, wherever the
stream is then placed: its frames come back through this node's balancer."""
from __future__ import annotations

import dataclasses

from cnetd.common.errors import NotFound, Unprocessable
from cnetd.core.config import NodeConfig
from cnetd.core.links import stream_signature
from ledger.records import WorkloadRecord
from ledger.store import Ledger
from workers.registry import EXECUTORS
from workers.stream import STREAM_TYPE


def bind_detector(record: WorkloadRecord, ledger: Ledger, node: NodeConfig) -> WorkloadRecord:
    """``record`` (a stream submitted here, not forwarded) with ``detector_api`` and ``detector_signature``; a
    detector that is not a live model service here is refused (422)."""
    if record.type != STREAM_TYPE or not isinstance(record.config.get("detector"), str):
        return record  # not a stream, or a malformed one: its executor's validate says why
    detector_id = record.config["detector"]
    try:
        detector = ledger.get(detector_id)
    except NotFound:
        raise Unprocessable(f"config.detector: no model service or deployment {detector_id!r} on this node "
                            "(submit the stream where its detector was submitted)") from None
    executor = EXECUTORS.get(detector.type)
    if executor is None or not executor.replicable:
        raise Unprocessable(f"config.detector: {detector_id!r} is a {detector.type} workload, not a model service")
    if detector.terminal:
        raise Unprocessable(f"config.detector: {detector_id!r} has ended ({detector.status})")
    return dataclasses.replace(record, config={
        **record.config, "detector_api": node.api_url,
        "detector_signature": stream_signature(node.auth_token, record.id, detector_id)})
