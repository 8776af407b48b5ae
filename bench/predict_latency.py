"""The YOLO service against what the machine can do, in one run: the in-process pipeline and its limit
beside /predict at 1, 4 and 16 clients, CPU seconds per request (and what a request costs the cores
beyond its image's pipeline), batching off and on (and what the service's v2 statistics say of them),
and a ``perf_analyzer``-style run of the KServe v2 protocol through ``tritonclient``.

    .venv/bin/python bench/predict_latency.py [--cpu 2] [--seconds 5] [--rounds 3]

One 640×480 JPEG (scikit-image's astronaut). Baselines, in this process and its children:
- the in-process pipeline (decode, letterbox, ``session.run``, NMS) with a session of ``--cpu`` threads:
  the latency one client could get at best;
- the same pipeline paced: each run after a sleep of 2 ms (shuffled among the back-to-back runs), the
  cores idle as a service's are between one client's requests (this machine runs a pipeline 5–10% slower
  after any pause: what a service at one client cannot avoid; ``bench/idle_penalty.py``);
- the in-process limit: ``--cpu`` processes, each a session of 1 thread running the pipeline as fast as it
  can: the images per second the cores can do; and its other form, ``--cpu`` threads of this process on
  sessions of 1 thread (what threads of one process share, the GIL among it, is paid there too).
The service is ``cnet-inference-yolo --threads CPU`` (what a workload of that cpu gets), sent the JPEG as
a raw ``image/jpeg`` body by ``wrk`` (``bench.http_load``: C, in its own process, so the load's own work
is not counted against the service). This machine's speed drifts by more than the gaps measured, so each
run of a service at 4 and 16 clients sits between two windows of the limit (its processes stay loaded and
idle between them), and its ratio is against those two; each run of one client sits between two windows
of the pipeline, back to back and paced, and its ratio is against those two; and the sessions form
before and after all. Prints JSON; medians and p99 in
milliseconds, ratios against the baselines.
"""
from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import orjson
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_least, at_most, measured  # noqa: E402
from bench.http_load import post_load, tree_cpu_s  # noqa: E402
from inference.imaging import decode_image  # noqa: E402
from inference.statistics import PHASES  # noqa: E402
from inference.yolo_model import YoloModel  # noqa: E402
from tests.support.assets import ASTRONAUT, YOLO_MODEL  # noqa: E402
from tests.support.nodes import VENV_BIN, free_port, wait_until_answers  # noqa: E402


def the_jpeg() -> bytes:
    image = cv2.resize(cv2.imread(ASTRONAUT), (640, 480), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def pipeline(model: YoloModel, jpeg: bytes) -> None:
    model.predict(decode_image(jpeg), confidence=0.25)


def _spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


PAUSE_S = 0.002  # about what the cores idle between one client's requests (its round trip, the HTTP)
PAUSES: dict[str, Callable[[], None]] = {"back_to_back": lambda: None, "after_sleep": lambda: time.sleep(PAUSE_S),
                                         "after_spin": lambda: _spin(PAUSE_S)}


def pipeline_medians(model: YoloModel, jpeg: bytes, runs: int,
                     pauses: tuple[str, ...] = tuple(PAUSES)) -> dict[str, float]:
    """The median milliseconds of the in-process pipeline, once warm, for each of ``pauses`` before a run:
    none, a sleep of PAUSE_S (the cores idle, as a service's are between one client's requests) or a spin
    as long (the cores kept busy). The runs of all are shuffled together, so the machine's drift falls on
    each alike."""
    for _ in range(10):
        pipeline(model, jpeg)
    order = [pause for pause in pauses for _ in range(runs)]
    random.Random(0).shuffle(order)
    timings: dict[str, list[float]] = {pause: [] for pause in pauses}
    for pause in order:
        PAUSES[pause]()
        started = time.perf_counter()
        pipeline(model, jpeg)
        timings[pause].append((time.perf_counter() - started) * 1000)
    return {pause: round(statistics.median(values), 2) for pause, values in timings.items()}


def pipeline_ms(model: YoloModel, jpeg: bytes, runs: int) -> float:
    """The median milliseconds of the in-process pipeline run back to back, once warm."""
    return pipeline_medians(model, jpeg, runs, ("back_to_back",))["back_to_back"]


@dataclass(frozen=True)
class Limit:
    images_per_s: float
    cpu_ms_per_image: float  # what the cores spend on one image when nothing else is done

    @classmethod
    def counted(cls, counts: Sequence[int], cpu_s: Sequence[float], seconds: float) -> Limit:
        """From each worker's images and CPU seconds over the same ``seconds``."""
        return cls(round(sum(counts) / seconds, 1), round(sum(cpu_s) / sum(counts) * 1000, 2))

    @classmethod
    def between(cls, before: Limit, after: Limit) -> Limit:
        return cls(statistics.mean((before.images_per_s, after.images_per_s)),
                   statistics.mean((before.cpu_ms_per_image, after.cpu_ms_per_image)))


def _limit_worker(jpeg: bytes, windows: Any, all_ready: Any, done: Any) -> None:
    cv2.setNumThreads(1)
    model = YoloModel(YOLO_MODEL, threads=1)
    for _ in range(5):
        pipeline(model, jpeg)
    while (seconds := windows.get()) is not None:
        all_ready.wait()  # every process counts over the same seconds
        count, cpu_before, deadline = 0, time.process_time(), time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            pipeline(model, jpeg)
            count += 1
        done.put((count, time.process_time() - cpu_before))


class LimitProcesses:
    """The in-process limit: ``processes`` processes of one 1-thread session each, loaded and warm once, idle
    between the windows that ``measure`` has them all count together."""

    def __init__(self, jpeg: bytes, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._windows, self._done = context.Queue(), context.Queue()
        self._all_ready = context.Barrier(processes)  # held here: a child unpickles it after start() returns
        self._workers = [context.Process(target=_limit_worker, daemon=True,
                                         args=(jpeg, self._windows, self._all_ready, self._done))
                         for _ in range(processes)]
        for worker in self._workers:
            worker.start()

    def measure(self, seconds: float) -> Limit:
        """Images per second of all the processes over one window of ``seconds``, and their CPU per image."""
        for _ in self._workers:
            self._windows.put(seconds)
        counts, cpu_s = zip(*[self._done.get(timeout=seconds + 120) for _ in self._workers])
        return Limit.counted(counts, cpu_s, seconds)

    def close(self) -> None:
        for _ in self._workers:
            self._windows.put(None)
        for worker in self._workers:
            worker.join(timeout=30)


def interleaved(limit: LimitProcesses, load: Callable[[], dict[str, float]], rounds: int,
                seconds: float) -> dict[str, Any]:
    """``rounds`` runs of ``load`` (a service's), each between two windows of the limit (L S L … S L), and
    each run's ratio against the mean of the two windows beside it: this machine's speed drifts by more
    than the gaps measured, so a service and a limit minutes apart cannot be compared. Medians of the runs
    (p99: the worst), the ratios each, and what a request costs the cores beyond its image's pipeline (the
    HTTP, the threads, the lanes)."""
    limits, runs = [limit.measure(seconds)], []
    for _ in range(rounds):
        runs.append(load())
        limits.append(limit.measure(seconds))
    beside = [Limit.between(before, after) for before, after in zip(limits, limits[1:])]
    ratios = [run["rps"] / around.images_per_s for run, around in zip(runs, beside)]
    beyond_ms = [run["cpu_s_per_request"] * 1000 - around.cpu_ms_per_image for run, around in zip(runs, beside)]
    return {"rps": statistics.median(run["rps"] for run in runs),
            "p50_ms": statistics.median(run["p50_ms"] for run in runs),
            "p99_ms": max(run["p99_ms"] for run in runs),
            "cpu_s_per_request": statistics.median(run["cpu_s_per_request"] for run in runs),
            "cores_busy": statistics.median(run["cores_busy"] for run in runs),
            "over_limit": round(statistics.median(ratios), 3), "over_limit_each": [round(r, 3) for r in ratios],
            "cpu_ms_per_request_beyond_the_limit": round(statistics.median(beyond_ms), 2),
            "limits_images_per_s": [each.images_per_s for each in limits]}


def in_process_sessions_limit(model: YoloModel, jpeg: bytes, threads: int, seconds: float) -> Limit:
    """Images per second of ``threads`` threads of this process running the pipeline back to back on
    ``model``'s sessions of 1 thread (its lanes, as the service's requests take them), counted together
    once each is warm, and their CPU per image: the limit's other form, which pays what threads of one
    process share (the GIL, the allocator)."""
    counts, cpu_s = [0] * threads, [0.0] * threads
    all_warm = threading.Barrier(threads)

    def run(index: int) -> None:
        for _ in range(3):
            with model.serving():
                pipeline(model, jpeg)
        all_warm.wait()
        cpu_before, deadline = time.thread_time(), time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            with model.serving():
                pipeline(model, jpeg)
            counts[index] += 1
        cpu_s[index] = time.thread_time() - cpu_before
    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return Limit.counted(counts, cpu_s, seconds)


def threads_load(send: Callable[[], None], clients: int, seconds: float, service_pid: int) -> dict[str, float]:
    """``clients`` threads of this process calling ``send`` back to back for ``seconds`` (a Python client's
    load, as Triton's Python client makes it): requests/s, p50 and p99 ms, service CPU s per request."""
    latencies: list[float] = []
    lock, stop = threading.Lock(), threading.Event()

    def client() -> None:
        send()  # its connection made
        while not stop.is_set():
            started = time.perf_counter()
            send()
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu_before = tree_cpu_s(service_pid)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    service_cpu_s = tree_cpu_s(service_pid) - cpu_before
    latencies.sort()
    return {"rps": round(len(latencies) / elapsed, 1), "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "cpu_s_per_request": round(service_cpu_s / len(latencies), 4),
            "cores_busy": round(service_cpu_s / elapsed, 2)}


def service(cpu: int, extra: list[str], log_dir: str, model: str = YOLO_MODEL) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([str(VENV_BIN / "cnet-inference-yolo"), "--model", model, "--port", str(port),
                                "--threads", str(cpu), "--log-dir", log_dir, "--name", "faces", *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_answers(f"http://127.0.0.1:{port}/health", process=process)
    return process, f"http://127.0.0.1:{port}"


def predict_load(url: str, jpeg: bytes, pid: int, clients: int, seconds: float) -> dict[str, float]:
    """/predict of the JPEG as a raw image/jpeg body, by wrk with ``clients`` connections."""
    return post_load(f"{url}/predict", jpeg, "image/jpeg", clients, seconds, pid)


def predict_runs_beside_the_limit(url: str, jpeg: bytes, pid: int, limit: LimitProcesses, rounds: int,
                                  seconds: float) -> dict[int, dict[str, Any]]:
    """``predict_load`` at 4 and 16 clients, each ``interleaved`` with the limit."""
    return {clients: interleaved(limit, partial(predict_load, url, jpeg, pid, clients, seconds), rounds, seconds)
            for clients in (4, 16)}


PIPELINE_WINDOW_RUNS = 60  # of each condition: about 2 s of pipeline runs between two runs of one client


def one_client_beside_the_pipeline(model: YoloModel, url: str, jpeg: bytes, pid: int, rounds: int,
                                   seconds: float) -> dict[str, Any]:
    """``rounds`` runs of one client's /predict, each between two windows of the in-process pipeline (back to
    back, and paced: ``pipeline_medians``), as ``interleaved`` does with the limit: measured minutes apart,
    the machine's drift alone moved the ratio from 0.71 to 1.24 between runs of one build. A service's entry:
    the pipeline's medians, the runs' medians as ``predict[1]``, and each run's p50 against the mean of the
    two windows beside it (``one_client``)."""
    def window() -> dict[str, float]:
        return pipeline_medians(model, jpeg, PIPELINE_WINDOW_RUNS, ("back_to_back", "after_sleep"))
    windows, runs = [window()], []
    for _ in range(rounds):
        runs.append(predict_load(url, jpeg, pid, 1, seconds))
        windows.append(window())

    def over(pause: str) -> list[float]:
        return [run["p50_ms"] / statistics.mean((before[pause], after[pause]))
                for run, before, after in zip(runs, windows, windows[1:])]
    ratios = over("back_to_back")
    return {"in_process_pipeline_ms": round(statistics.median(each["back_to_back"] for each in windows), 2),
            "in_process_pipeline_paced_ms": round(statistics.median(each["after_sleep"] for each in windows), 2),
            "predict": {1: {key: statistics.median(run[key] for run in runs)
                            for key in ("rps", "p50_ms", "cpu_s_per_request", "cores_busy", "client_cores")}
                        | {"p99_ms": max(run["p99_ms"] for run in runs)}},
            "one_client": {"latency_over_pipeline": round(statistics.median(ratios), 2),
                           "latency_over_pipeline_each": [round(ratio, 2) for ratio in ratios],
                           "latency_over_paced_pipeline": round(statistics.median(over("after_sleep")), 2)}}


def served_statistics(url: str) -> dict[str, float]:
    """What the service's v2 statistics say of the requests it has served: the mean batch size of its
    executions, and the milliseconds a request spent in each phase."""
    (model,) = requests.get(f"{url}/v2/models/faces/stats", timeout=30).json()["model_stats"]
    phases, served = model["inference_stats"], model["inference_stats"]["success"]["count"]
    return {"mean_batch_size": round(model["inference_count"] / model["execution_count"], 2),
            **{f"{phase}_ms": round(phases[phase]["ns"] / served / 1e6, 2) for phase in PHASES}}


def triton_runs(url: str, pid: int, seconds: float) -> dict[int, dict[str, float]]:
    """What ``perf_analyzer --concurrency-range`` measures: infer on a random tensor of the model's input
    shape, binary data both ways, through tritonclient (Python: its own work shares the cores)."""
    import tritonclient.http as triton

    host = url.removeprefix("http://")
    tensor = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)

    def sender() -> Callable[[], None]:
        own = threading.local()  # a client per thread (geventhttpclient's hub is the thread's), per run

        def send() -> None:
            if not hasattr(own, "client"):
                own.client = triton.InferenceServerClient(host)
            request = triton.InferInput("images", list(tensor.shape), "FP32")
            request.set_data_from_numpy(tensor, binary_data=True)
            own.client.infer("faces", [request], outputs=[triton.InferRequestedOutput("output0", binary_data=True)])
        return send
    return {concurrency: threads_load(sender(), concurrency, seconds, pid) for concurrency in (1, 4, 16)}


def service_arguments(parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """--cpu (each service's cpu requirement, its threads) and --seconds (per measured run), beside what
    ``parser`` already has."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--cpu", type=int, default=2, help="each service's cpu requirement (its threads)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured run")
    return parser.parse_args()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="runs of a service at 4 and at 16 clients, each "
                        "between two windows of the limit")
    args = service_arguments(parser)
    cv2.setNumThreads(1)  # as in the service and the limit's processes
    jpeg = the_jpeg()
    results: dict[str, Any] = {"image": "640x480 JPEG", "jpeg_bytes": len(jpeg), "cpu": args.cpu,
                               "machine_cores": psutil.cpu_count(), "client": "wrk, 1 thread"}
    model = YoloModel(YOLO_MODEL, threads=args.cpu)
    limit = LimitProcesses(jpeg, args.cpu)
    try:
        sessions_before = in_process_sessions_limit(model, jpeg, args.cpu, args.seconds)
        limit_beside = limit.measure(args.seconds)
        with tempfile.TemporaryDirectory() as log_dir:
            for name, extra in (("service", []), ("service_batching", ["--batch-max-size", "8",
                                                                        "--batch-max-delay-ms", "2"])):
                process, url = service(args.cpu, extra, log_dir)
                try:
                    entry = one_client_beside_the_pipeline(model, url, jpeg, process.pid, args.rounds, args.seconds)
                    entry["predict"].update(predict_runs_beside_the_limit(url, jpeg, process.pid, limit, args.rounds,
                                                                          args.seconds))
                    results[name] = {**entry, "v2_statistics_of_predict": served_statistics(url)}
                    if name == "service":
                        results["tritonclient_v2_infer"] = triton_runs(url, process.pid, args.seconds)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
        sessions_after = in_process_sessions_limit(model, jpeg, args.cpu, args.seconds)
    finally:
        limit.close()
    results["in_process_limit"] = {"images_per_s": limit_beside.images_per_s, "processes": args.cpu,
                                   "cpu_ms_per_image": limit_beside.cpu_ms_per_image,
                                   "measured": "beside each service run, see over_limit_each"}
    results["in_process_sessions_limit"] = {
        "images_per_s": round(statistics.mean((sessions_before.images_per_s, sessions_after.images_per_s)), 1),
        "before_and_after": [sessions_before.images_per_s, sessions_after.images_per_s], "threads": args.cpu,
        "cpu_ms_per_image": sessions_before.cpu_ms_per_image,
        "over_the_limit": round(sessions_before.images_per_s / limit_beside.images_per_s, 3)}
    for name in ("service", "service_batching"):
        entry, runs = results[name], results[name]["predict"]
        results[f"{name}_over_limit"] = {clients: runs[clients]["over_limit"] for clients in (4, 16)}
        results[f"{name}_cpu_ms_per_request_beyond_the_limit"] = {
            clients: runs[clients]["cpu_ms_per_request_beyond_the_limit"] for clients in (4, 16)}
        results[f"{name}_latency_over_pipeline_at_1"] = entry["one_client"]["latency_over_pipeline"]
        results[f"{name}_latency_over_paced_pipeline_at_1"] = entry["one_client"]["latency_over_paced_pipeline"]
    results["goals"] = {  # the default service's (batching is an option, measured beside it)
        **{f"service_over_limit.{clients}": at_least(results["service_over_limit"][clients], 0.9) for clients in (4, 16)},
        **{f"service_batching_over_limit.{clients}": measured(results["service_batching_over_limit"][clients],
                                                              "batching is an option; the goal is the default's")
           for clients in (4, 16)},
        "service_latency_over_pipeline_at_1": at_most(results["service_latency_over_pipeline_at_1"], 1.15)}
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
