"""Dynamic batching of a model's inferences (off unless a workload's ``batch`` asks for it): requests that
arrive within ``max_delay_ms`` of the first one waiting, up to ``max_size``, run as one batch on all the
service's cores, and each gets its row of the output.

It trades each request's wait (at most ``max_delay_ms``) for fewer, larger runs; whether that pays is for
``bench/predict_latency.py`` to say on the machine and model at hand.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from inference.statistics import spent


@dataclass(frozen=True)
class BatchPolicy:
    max_size: int
    max_delay_ms: float


class Batcher:
    """Runs ``run_batch`` (which answers a batch's output and the nanoseconds it computed) on its own thread
    for the inputs that ``run`` is given together."""

    def __init__(self, run_batch: Callable[[np.ndarray], tuple[np.ndarray, int]], max_size: int,
                 max_delay_s: float) -> None:
        self._run_batch = run_batch
        self._max_size = max_size
        self._max_delay_s = max_delay_s
        self._waiting: queue.SimpleQueue[tuple[np.ndarray, Future[tuple[np.ndarray, int]]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="batcher", daemon=True).start()

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The model's output for one input of batch size 1, run with whatever else arrives meanwhile; the
        request counts the batch's compute as its own, and the rest of its wait as queued."""
        result: Future[tuple[np.ndarray, int]] = Future()
        waiting_since = time.perf_counter_ns()
        self._waiting.put((tensor, result))
        output, computed_ns = result.result()
        spent("queue", time.perf_counter_ns() - waiting_since - computed_ns)
        spent("compute_infer", computed_ns)
        return output

    def _serve(self) -> None:
        while True:
            batch = [self._waiting.get()]
            deadline = time.monotonic() + self._max_delay_s
            while len(batch) < self._max_size and (left_s := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._waiting.get(timeout=left_s))
                except queue.Empty:
                    break
            try:
                output, computed_ns = self._run_batch(np.concatenate([tensor for tensor, _ in batch]))
            except Exception as exc:  # every request of the batch answers with it
                for _, result in batch:
                    result.set_exception(exc)
                continue
            for row, (_, result) in enumerate(batch):
                result.set_result((output[row:row + 1], computed_ns))
