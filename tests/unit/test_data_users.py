"""Which workloads hold data from being deleted: those not finished that name a file of it as their model or
their source, here or delegated; not other data's, not finished ones, not the model records made from it."""
from __future__ import annotations

from cnetd.core.model_records import MODEL_TYPE
from cnetd.core.upload_files import data_users
from ledger.records import Resources, Status, WorkloadRecord


def record(workload_id: str, workload_type: str, status: str = Status.RUNNING, **config: str) -> WorkloadRecord:
    return WorkloadRecord(id=workload_id, type=workload_type, name=workload_id, config=config,
                          requirements=Resources(cpu=1), status=status)


def test_the_workloads_that_name_a_file_of_the_data() -> None:
    records = [record("service", "mlmodel", model_path="data://abc/faces.onnx"),
               record("camera", "stream", source="data://abc/clip.mp4"),
               record("delegated", "mlmodel", Status.UNKNOWN, model_path="data://abc/faces.onnx"),
               record("finished", "stream", Status.COMPLETED, source="data://abc/clip.mp4"),
               record("other-data", "mlmodel", model_path="data://abcd/faces.onnx"),
               record("http", "mlmodel", model_path="http://abc/faces.onnx"),
               record("model-x", MODEL_TYPE, Status.STORED, source="data://abc/faces.onnx")]
    assert data_users(records, "abc") == ["camera", "delegated", "service"]
    assert data_users(records, "abcd") == ["other-data"]
    assert data_users(records, "ab") == []
