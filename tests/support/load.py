"""A continuous load of predictions for tests and benchmarks: clients that each send one request after
another on a kept-alive connection, until stopped, recording every answer (when it was sent and came, its
status, the headers that name what answered, or the error that came instead)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.assets import ASTRONAUT

IMAGE = Path(ASTRONAUT).read_bytes()
SHOWN_HEADERS = ("X-Cnet-Replica", "X-Cnet-Revision")


@dataclass(frozen=True)
class Answer:
    client: int
    sent_at: float  # monotonic
    answered_at: float
    status: int | None  # None: no answer (the error says why)
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    detections: tuple[str, ...] = ()
    inference_ms: float | None = None  # the model's run, as the service timed it

    @property
    def ok(self) -> bool:
        return self.status == 200


def answered_between(answers: list[Answer], start: float, end: float) -> list[Answer]:
    """The answers that came between ``start`` and ``end`` (monotonic)."""
    return [answer for answer in answers if start <= answer.answered_at < end]


def per_second(answers: list[Answer], start: float, end: float) -> float:
    """How many answers came per second between ``start`` and ``end`` (monotonic)."""
    return len(answered_between(answers, start, end)) / (end - start)


class LoadThreads:
    """Client threads that run until stopped: started on entering, stopped and joined on leaving."""

    def __init__(self, threads: list[threading.Thread], join_timeout_s: float) -> None:
        self._threads = threads
        self._join_timeout_s = join_timeout_s
        self._stop = threading.Event()

    def __enter__(self) -> LoadThreads:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._join_timeout_s)


class PredictionLoad(LoadThreads):
    """``clients`` threads posting ``image`` (the astronaut) to ``url`` (a service's /predict, or a node's
    predict relay)."""

    def __init__(self, url: str, clients: int = 4, headers: dict[str, str] | None = None,
                 timeout_s: float = 30.0, image: bytes = IMAGE) -> None:
        self._url = url
        self._image = image
        self._headers = {"Content-Type": "image/png", **(headers or {})}
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        super().__init__([threading.Thread(target=self._client, args=(index,), daemon=True) for index in range(clients)],
                         timeout_s + 5)

    def __enter__(self) -> PredictionLoad:
        super().__enter__()
        return self

    def wait_for_answers(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answers) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.answers)} answers within {timeout_s} s")
            time.sleep(0.05)

    def _client(self, index: int) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    answer = session.post(self._url, data=self._image, headers=self._headers, timeout=self._timeout_s)
                    body = answer.json() if answer.status_code == 200 else {}
                    record = Answer(index, sent, time.monotonic(), answer.status_code,
                                    None if answer.status_code == 200 else answer.text[:300],
                                    {name: answer.headers[name] for name in SHOWN_HEADERS if name in answer.headers},
                                    tuple(sorted(item["class"] for item in body.get("detections", []))),
                                    body.get("inference_ms"))
                except requests.RequestException as exc:
                    record = Answer(index, sent, time.monotonic(), None, f"{type(exc).__name__}: {exc}"[:300])
                with self._lock:
                    self.answers.append(record)

    # -- what happened --------------------------------------------------------------------------

    def failed(self) -> list[Answer]:
        return [answer for answer in self.answers if not answer.ok]

    def connection_errors(self) -> list[Answer]:
        """Requests that got no HTTP answer at all: refused, reset, timed out."""
        return [answer for answer in self.answers if answer.status is None]

    def longest_gap_s(self, since: float = 0.0) -> float:
        """The longest time one client waited between two answers (after ``since``, monotonic)."""
        longest = 0.0
        for client in range(len(self._threads)):
            times = [answer.answered_at for answer in self.answers if answer.client == client and answer.sent_at >= since]
            longest = max([longest, *(later - earlier for earlier, later in zip(times, times[1:]))])
        return longest
