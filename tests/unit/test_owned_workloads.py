"""What was deployed with a workload (a stream's own detector): the inline detector's shape, and when the
scheduler takes one whose owner is gone for an orphan."""
from __future__ import annotations

import pytest

from cnetd.common.errors import Invalid, Unprocessable
from cnetd.core.submission import inline_detector, parse_submission
from cnetd.scheduler.orphans import OrphanWatch
from ledger.records import Desired, Resources, WorkloadRecord


def record(workload_id: str, owned_by: str | None = None, **fields: object) -> WorkloadRecord:
    return WorkloadRecord(id=workload_id, type="opencv", name=workload_id, config={}, requirements=Resources(),
                          owned_by=owned_by, **fields)


def test_owned_workloads_whose_owner_stays_gone_for_the_grace_are_orphans() -> None:
    """Timed by the rounds that saw the owner missing, not by the record's wall-clock created_at (here 0: a
    wall clock stepped far forward would make every record look that old)."""
    watch = OrphanWatch(grace_s=60.0)
    records = [record("cam"), record("cam-detector", owned_by="cam"),  # its owner is there
               record("gone-detector", owned_by="gone"),  # the control: an orphan, once the grace is over
               record("stopping-detector", owned_by="gone", desired=Desired.STOP),  # being deleted already
               record("plain")]
    def orphans(listed: list[WorkloadRecord], now: float) -> list[WorkloadRecord]:
        return watch.orphans(listed, {item.id for item in listed}, now)
    assert orphans(records, now=1000.0) == []  # its stream may still be on its way
    new = record("new-detector", owned_by="new")
    assert orphans([*records, new], now=1059.0) == []
    assert [item.id for item in orphans([*records, new], now=1060.0)] == ["gone-detector"]
    assert orphans([*records, new, record("new")], now=1200.0)[0].id == "gone-detector"  # new's owner came
    assert [item.id for item in orphans([*records, new], now=1201.0)] == ["gone-detector"]  # new's clock restarts
    # A round makes only the records it may act on: an owner not among them is there when its id is.
    assert watch.orphans([new], {"new-detector", "new"}, now=1400.0) == []


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
