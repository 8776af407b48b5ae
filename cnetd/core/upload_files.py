"""What an upload leaves on disk and in the data catalog, and its removal: the staging directory its parts stream
into, the directory they are renamed to, and the catalog entry. Removed by the API when an upload fails, and by the
scheduler when data is deleted (unless a workload uses it: ``data_users``) or an upload's receiving API process died
mid-way (``abandoned``)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cnetd.core.model_records import MODEL_TYPE
from ledger.catalog import Catalog
from ledger.records import Status, WorkloadRecord


def staging_dir(data_root: Path, data_key: str) -> Path:
    return data_root / f".uploading-{data_key}"


def remove_upload_files(data_root: Path, data_key: str, catalog: Catalog) -> None:
    catalog.remove(data_key)
    shutil.rmtree(staging_dir(data_root, data_key), ignore_errors=True)
    shutil.rmtree(data_root / data_key, ignore_errors=True)


def receiver() -> dict[str, float]:
    """Who receives an upload, for its reservation: this process, by pid and start time (a pid alone may be
    reused)."""
    import psutil  # where used, as in _alive
    me = psutil.Process()
    return {"pid": me.pid, "started": me.create_time()}


def data_users(records: list[WorkloadRecord], data_key: str) -> list[str]:
    """The workloads (of ``records``, a node's) that name a file of the data as their model or source, by id: any
    not finished, run here or delegated (a deployment's future replicas, a service restarted, read it again)."""
    return sorted(record.id for record in records
                  if record.type != MODEL_TYPE and not record.terminal and names_data(record.config, data_key))


def names_data(config: dict[str, Any], data_key: str) -> bool:
    """Whether a workload's config names a file of the data as its model or source: on the stored JSON too, so a
    ledger scan makes records of those only (``Ledger.workloads(where=…)``)."""
    prefix = f"data://{data_key}/"
    return any(isinstance(named, str) and named.startswith(prefix)
               for named in (config.get("model_path"), config.get("source")))


def abandoned(records: list[WorkloadRecord]) -> list[WorkloadRecord]:
    """Uploads in progress whose receiving process is gone (killed with its API, say): nothing will finish or
    undo them but the scheduler."""
    return [record for record in records if record.type == "data" and record.status == Status.UPLOADING
            and not record.deleting and not _alive(record.config)]


def _alive(config: dict[str, object]) -> bool:
    held_by = config.get("receiver")
    if not isinstance(held_by, dict):
        return True  # a reservation from before receivers were recorded is left to whoever made it
    import psutil  # loaded when an upload in progress is checked: an idle scheduler holds none (0.9 MiB)
    try:
        process = psutil.Process(int(held_by["pid"]))
        return process.create_time() == held_by["started"] and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, TypeError, ValueError):
        return False
