"""What was deployed with a workload (a stream's own detector): the inline detector's shape, and when the
scheduler takes one whose owner is gone for an orphan."""
from __future__ import annotations

import pytest

from cnetd.common.errors import Invalid, Unprocessable
from cnetd.core.submission import inline_detector, parse_submission
from cnetd.scheduler.scheduler import orphaned
from ledger.records import Desired, Resources, WorkloadRecord


def record(workload_id: str, owned_by: str | None = None, created_at: float = 0.0, **fields: object) -> WorkloadRecord:
    return WorkloadRecord(id=workload_id, type="opencv", name=workload_id, config={}, requirements=Resources(),
                          owned_by=owned_by, created_at=created_at, **fields)


def test_only_old_owned_workloads_whose_owner_is_gone_are_orphans() -> None:
    records = [record("cam"), record("cam-detector", owned_by="cam"),  # its owner is there
               record("gone-detector", owned_by="gone"),  # the control: an orphan
               record("new-detector", owned_by="new", created_at=100.0),  # its stream may still be on its way
               record("stopping-detector", owned_by="gone", desired=Desired.STOP),  # being deleted already
               record("plain")]
    assert [item.id for item in orphaned(records, created_before=50.0)] == ["gone-detector"]


def test_an_inline_detector_is_the_streams_own() -> None:
    stream = parse_submission({"type": "stream", "id": "cam", "config": {
        "source": "rtsp://camera/1", "detector": {"type": "opencv", "config": {"cascade_type": "face"}, "replicas": 2}}})
    detector = inline_detector(stream)
    assert detector is not None and (detector.id, detector.owned_by, detector.type) == ("cam-detector", "cam", "opencv")
    assert detector.deployment is not None  # replicas: a deployment of its own
    named = parse_submission({"type": "stream", "id": "cam", "config": {"source": "rtsp://camera/1", "detector": "x"}})
    assert inline_detector(named) is None
    for spec, words in (({"type": "process", "config": {"command": "sleep"}}, "no model service"),
                        ({"type": "opencv", "id": "mine"}, "id"), ({"type": "nope"}, "config.detector")):
        with pytest.raises(Invalid, match=words):
            inline_detector(parse_submission({"type": "stream", "id": "cam", "config": {"source": "x", "detector": spec}}))
    with pytest.raises(Unprocessable, match="at most 54"):
        inline_detector(parse_submission({"type": "stream", "id": "c" * 60, "config": {"source": "x", "detector": {
            "type": "opencv"}}}))
