"""The models a data delete takes along: the records of unused local models whose file lay in the data. A fetch
under way has a record too (no kind, no path yet): it is left alone, not a KeyError (a chaos run found every data
delete on a node fetching a model answered 500, the data half deleted)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from cnetd.core.model_records import MODEL_TYPE, record_id
from cnetd.scheduler.models.store import ModelStore
from ledger.records import Resources, Status, WorkloadRecord
from ledger.store import Ledger
from tests.support.ledgers import unit_ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with unit_ledger(tmp_path / "ledger") as opened:
        yield opened


def model(sha256: str, path: Path, kind: str = "local") -> WorkloadRecord:
    return WorkloadRecord(id=record_id(sha256), type=MODEL_TYPE, name=path.name, status=Status.STORED,
                          requirements=Resources(),
                          config={"sha256": sha256, "path": str(path), "source": str(path), "size_bytes": 1,
                                  "received_bytes": 1, "kind": kind, "last_used": 0.0})


def test_the_unused_local_models_in_the_folder_go_and_a_fetch_under_way_stays(ledger: Ledger, tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = ModelStore(ledger, str(data), str(tmp_path / "catalog.db"), 1 << 20, None)
    for record in (model("a" * 64, data / "key1" / "faces.onnx"), model("b" * 64, data / "key2" / "faces.onnx"),
                   model("c" * 64, data / "models" / ("c" * 64), kind="cached")):
        ledger.record_holding_nothing(record)
    fetching = WorkloadRecord(id="model-fetch-1", type=MODEL_TYPE, name="h", status=Status.UPLOADING,
                              requirements=Resources(),
                              config={"source": "http://h/x.onnx", "size_bytes": 5, "received_bytes": 0})
    ledger.record_holding_nothing(fetching)
    store.forget_unused_in(str(data / "key1"))
    assert sorted(record.id for record in ledger.workloads()) == sorted(
        [record_id("b" * 64), record_id("c" * 64), "model-fetch-1"])
