"""Triton's statistics extension for a model service: how many inferences and model executions it has done,
and where its requests' time went, as ``GET /v2/models/{name}/stats`` answers (``inference.kserve``).

Per request (``ModelStatistics.request``, around one /predict or v2 infer): ``success`` or ``fail`` with its
duration, and the phases it spent: ``queue`` (waiting for a core, ``inference.lanes``, or for its batch to
run, ``inference.batching``), ``compute_input`` (decoding, letterbox, tensor), ``compute_infer`` (the model
run it was part of) and ``compute_output`` (decoding the output, NMS, the answer's tensors). Per execution
(``ModelStatistics.execution``, around one run of the model): its batch size and compute time, so that a
batch of eight counts eight inferences and one execution. Durations are nanoseconds, as Triton's are.

Code below a request reports into it through context variables (each request is served on its own thread;
a batch runs on the batcher's thread, which hands each request its share), so the models' signatures
carry no timing arguments.
"""
from __future__ import annotations

import contextlib
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class RequestRecord:
    """One request: its batch size (``inferences``, 1 unless its handler learns more) and its phases."""
    inferences: int = 1
    ns: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))


@dataclass
class Execution:
    """One run of the model: what it waited for cores, and what it computed."""
    waited_ns: int = 0
    computed_ns: int = 0


_request: ContextVar[RequestRecord | None] = ContextVar("inference_request", default=None)
_execution: ContextVar[Execution | None] = ContextVar("inference_execution", default=None)


def spent(phase: str, ns: int) -> None:
    """Add ``ns`` to ``phase`` of the request this thread is serving (nothing outside one)."""
    request = _request.get()
    if request is not None:
        request.ns[phase] += ns


@contextlib.contextmanager
def timed(phase: str) -> Iterator[None]:
    """Count the time of the block as ``phase`` of the request this thread is serving."""
    started = time.perf_counter_ns()
    try:
        yield
    finally:
        spent(phase, time.perf_counter_ns() - started)


def waited_for_cores(ns: int) -> None:
    """What the execution under way on this thread waited for its cores (not its compute time)."""
    execution = _execution.get()
    if execution is not None:
        execution.waited_ns += ns


class ModelStatistics:
    """One model's counters; safe to update from every request thread at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to nothing counted (after the service's warm-up)."""
        self._outcomes = {"success": Duration(), "fail": Duration()}
        self._phases = {phase: Duration() for phase in PHASES}
        self._batches: dict[int, Duration] = {}
        self._inference_count = 0
        self._execution_count = 0
        self._last_inference_ms = 0

    @contextlib.contextmanager
    def request(self) -> Iterator[RequestRecord]:
        """Around one request: success (it raised nothing) or fail, and the phases of a success."""
        record, started = RequestRecord(), time.perf_counter_ns()
        token = _request.set(record)
        outcome = "fail"
        try:
            yield record
            outcome = "success"
        finally:
            _request.reset(token)
            with self._lock:
                self._outcomes[outcome].add(time.perf_counter_ns() - started)
                if outcome == "success":
                    self._inference_count += record.inferences
                    self._last_inference_ms = time.time_ns() // 1_000_000
                    for phase, ns in record.ns.items():
                        self._phases[phase].add(ns)

    @contextlib.contextmanager
    def execution(self, batch_size: int) -> Iterator[Execution]:
        """Around one run of the model on ``batch_size`` inputs: counted, and on a request's thread, its
        wait for cores and its compute added to that request."""
        execution, started = Execution(), time.perf_counter_ns()
        token = _execution.set(execution)
        try:
            yield execution
        finally:
            _execution.reset(token)
            execution.computed_ns = time.perf_counter_ns() - started - execution.waited_ns
            spent("queue", execution.waited_ns)
            spent("compute_infer", execution.computed_ns)
            with self._lock:
                self._execution_count += 1
                self._batches.setdefault(batch_size, Duration()).add(execution.computed_ns)

    def to_dict(self, name: str) -> dict[str, Any]:
        """Triton's ``model_stats`` entry for this model (version 1)."""
        with self._lock:
            return {"name": name, "version": "1", "last_inference": self._last_inference_ms,
                    "inference_count": self._inference_count, "execution_count": self._execution_count,
                    "inference_stats": {kind: duration.to_dict()
                                        for kind, duration in {**self._outcomes, **self._phases}.items()},
                    "batch_stats": [{"batch_size": size, "compute_infer": duration.to_dict()}
                                    for size, duration in sorted(self._batches.items())]}
