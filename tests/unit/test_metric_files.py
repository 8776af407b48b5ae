"""Counters written by ``cnetd.common.metric_files`` read back through prometheus_client's own multiprocess
collector (the one /metrics uses), and a live gauge written by prometheus_client read back by the
scheduler's reader: the file format is checked in both directions against the library that defines it."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.values import MultiProcessValue

from cnetd.common import metric_files
from cnetd.common.metric_files import MULTIPROCESS_ENV, Counter
from cnetd.core.counters import ONGOING_METRIC, ongoing_requests


@pytest.fixture()
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    monkeypatch.setattr(metric_files, "_FILES", metric_files._Files())  # this process's file, in this dir
    return tmp_path


def collected(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect() for sample in family.samples}


def test_counters_read_back_through_prometheus_client(metrics_dir: Path) -> None:
    plain = Counter("cnet_test_plain_total", "A count without labels")
    by_outcome = Counter("cnet_test_outcomes_total", "A count by outcome", ["outcome"])
    plain.inc()
    plain.inc(2.5)
    by_outcome.labels("hit").inc()
    by_outcome.labels("miss").inc(4)
    by_outcome.labels("hit").inc()
    assert [path.name for path in metrics_dir.iterdir()] == [f"counter_cnet_{os.getpid()}.db"]
    values = collected(metrics_dir)
    assert values[("cnet_test_plain_total", ())] == 3.5
    assert values[("cnet_test_outcomes_total", (("outcome", "hit"),))] == 2
    assert values[("cnet_test_outcomes_total", (("outcome", "miss"),))] == 4


def test_a_file_grows_past_its_first_mapping_and_keeps_every_count(metrics_dir: Path) -> None:
    """3,000 label values need more than the first 64 KiB: the mapping doubles and no entry is lost."""
    counter = Counter("cnet_test_many_total", "Many label values", ["key"])
    for index in range(3000):
        counter.labels(f"label-{index:05d}").inc(index)
    assert (metrics_dir / f"counter_cnet_{os.getpid()}.db").stat().st_size > 1 << 16
    values = collected(metrics_dir)
    assert [values[("cnet_test_many_total", (("key", f"label-{index:05d}"),))] for index in range(3000)] == list(
        map(float, range(3000)))


def test_counts_from_threads_are_not_lost(metrics_dir: Path) -> None:
    counter = Counter("cnet_test_threads_total", "Counted from threads", ["thread"])

    def count(name: str) -> None:
        for _ in range(2000):
            counter.labels(name if name != "t0" else "shared").inc()
            counter.labels("shared").inc()
    threads = [threading.Thread(target=count, args=(f"t{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = collected(metrics_dir)
    assert values[("cnet_test_threads_total", (("thread", "shared"),))] == 2000 * 4 + 2000
    assert values[("cnet_test_threads_total", (("thread", "t3"),))] == 2000


def test_a_reused_pid_goes_on_from_the_file_it_finds(metrics_dir: Path) -> None:
    """A process whose pid an earlier one had (the node's processes restart) adds to that file's counts, as
    prometheus_client does, so the node's totals do not go back."""
    Counter("cnet_test_reused_total", "Counted twice").inc(5)
    metric_files._FILES = metric_files._Files()  # what a new process with the same pid starts with
    Counter("cnet_test_reused_total", "Counted twice").inc(2)
    assert collected(metrics_dir)[("cnet_test_reused_total", ())] == 7


def test_without_a_multiprocess_dir_counts_stay_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    monkeypatch.setattr(metric_files, "_FILES", metric_files._Files())
    counter = Counter("cnet_test_memory_total", "Counted in memory", ["outcome"])
    counter.labels("x").inc(3)
    assert counter.labels("x").value == 3
    with pytest.raises(ValueError):
        counter.inc()  # a labelled counter is counted by its labels
    with pytest.raises(ValueError):
        counter.labels("x").inc(-1)


def test_the_scheduler_reads_the_api_workers_live_gauge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gauge a worker keeps with prometheus_client (``livesum``, a file per pid): summed by deployment
    while its pid lives. The control: the same file under a pid that has ended is not read."""
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    gauge = MultiProcessValue()
    for deployment, amount in (("d1", 3.0), ("d2", 1.0)):
        gauge("gauge", ONGOING_METRIC, ONGOING_METRIC, ("deployment",), (deployment,), "In flight",
              multiprocess_mode="livesum").inc(amount)
    gauge("gauge", "cnet_other", "cnet_other", ("deployment",), ("d1",), "Another gauge",
          multiprocess_mode="livesum").inc(7)
    assert ongoing_requests(tmp_path) == {"d1": 3.0, "d2": 1.0}
    written = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    written.rename(tmp_path / "gauge_livesum_999999999.db")  # above pid_max: no such process
    assert ongoing_requests(tmp_path) == {}
