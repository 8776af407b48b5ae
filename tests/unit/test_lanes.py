"""How a service shares its cores out (``inference.lanes``): a request alone gets the wide session,
requests together get one narrow session each, a batch waits for every core, and no more cores than it
has are ever taken at once."""
from __future__ import annotations

import threading
import time

import pytest

from inference.lanes import Lanes

pytestmark = pytest.mark.unit


def test_a_request_alone_takes_the_wide_session() -> None:
    lanes = Lanes("wide", ["narrow-0", "narrow-1"])
    with lanes.serving():
        assert lanes.run(lambda session: session) == "wide"


def test_requests_together_take_one_core_each_and_never_more_than_there_are() -> None:
    lanes, lock = Lanes("wide", ["narrow-0", "narrow-1"]), threading.Lock()
    busy, most, used = [0], [0], []

    def work(session: str) -> None:
        with lock:
            busy[0] += 2 if session == "wide" else 1
            most[0] = max(most[0], busy[0])
            used.append(session)
        time.sleep(0.01)
        with lock:
            busy[0] -= 2 if session == "wide" else 1

    def request() -> None:
        with lanes.serving():
            for _ in range(5):
                lanes.run(work)
    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] <= 2 and len(used) == 20
    assert set(used) <= {"narrow-0", "narrow-1", "wide"} and used.count("wide") < len(used)


def test_a_batch_takes_the_whole_of_the_cores() -> None:
    lanes = Lanes("wide", ["narrow-0", "narrow-1"])
    started, release = threading.Event(), threading.Event()

    def hold(session: str) -> str:
        started.set()
        release.wait(5)
        return session
    with lanes.serving(), lanes.serving():  # two requests in the service: the first takes a narrow one
        holder = threading.Thread(target=lambda: lanes.run(hold))
        holder.start()
        started.wait(5)
        batch: list[object] = []
        waiter = threading.Thread(target=lambda: batch.append(lanes.run(lambda session: session, whole=True)))
        waiter.start()
        time.sleep(0.05)
        assert not batch  # a core is taken: the batch waits for both
        release.set()
        holder.join()
        waiter.join()
    assert batch == ["wide"]
