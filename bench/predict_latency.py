"""The YOLO service against what the machine can do, in one run: the in-process pipeline and its limit
beside /predict at 1, 4 and 16 clients, CPU seconds per request, batching off and on, and a
``perf_analyzer``-style run of the KServe v2 protocol through ``tritonclient``.

    .venv/bin/python bench/predict_latency.py [--cpu 2] [--seconds 6]

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
is not counted against the service). The limits are measured before and after the services (their means
are the references), and the pipelines just before each service's runs, since this machine's speed drifts
by more than the gaps measured. Prints JSON; medians and p99 in milliseconds, ratios against the baselines.
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
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_load import post_load, tree_cpu_s  # noqa: E402
from inference.imaging import decode_image  # noqa: E402
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


def _limit_worker(jpeg: bytes, seconds: float, all_warm: Any, done: Any) -> None:
    cv2.setNumThreads(1)
    model = YoloModel(YOLO_MODEL, threads=1)
    for _ in range(5):
        pipeline(model, jpeg)
    all_warm.wait()  # every process counts over the same seconds
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pipeline(model, jpeg)
        count += 1
    done.put(count)


def in_process_limit(jpeg: bytes, processes: int, seconds: float) -> float:
    """Images per second of ``processes`` processes of one 1-thread session each, counted together once
    all are loaded and warm."""
    context = multiprocessing.get_context("spawn")
    done, all_warm = context.Queue(), context.Barrier(processes)
    workers = [context.Process(target=_limit_worker, args=(jpeg, seconds, all_warm, done)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [done.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    return round(sum(counts) / seconds, 1)


def in_process_sessions_limit(model: YoloModel, jpeg: bytes, threads: int, seconds: float) -> float:
    """Images per second of ``threads`` threads of this process running the pipeline back to back on
    ``model``'s sessions of 1 thread (its lanes, as the service's requests take them), counted together
    once each is warm: the limit's other form, which pays what threads of one process share (the GIL, the
    allocator)."""
    counts = [0] * threads
    all_warm = threading.Barrier(threads)

    def run(index: int) -> None:
        for _ in range(3):
            with model.serving():
                pipeline(model, jpeg)
        all_warm.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            with model.serving():
                pipeline(model, jpeg)
            counts[index] += 1
    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return round(sum(counts) / seconds, 1)


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


def predict_runs(url: str, jpeg: bytes, pid: int, seconds: float,
                 client_counts: tuple[int, ...] = (1, 4, 16)) -> dict[int, dict[str, float]]:
    """/predict of the JPEG as a raw image/jpeg body, by wrk at each count of clients (connections)."""
    return {clients: post_load(f"{url}/predict", jpeg, "image/jpeg", clients, seconds, pid)
            for clients in client_counts}


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


def service_arguments() -> argparse.Namespace:
    """--cpu (each service's cpu requirement, its threads) and --seconds (per measured run)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", type=int, default=2, help="each service's cpu requirement (its threads)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per measured run")
    return parser.parse_args()


def main() -> None:
    args = service_arguments()
    cv2.setNumThreads(1)  # as in the service and the limit's processes
    jpeg = the_jpeg()
    results: dict[str, Any] = {"image": "640x480 JPEG", "jpeg_bytes": len(jpeg), "cpu": args.cpu,
                               "machine_cores": psutil.cpu_count(), "client": "wrk, 1 thread"}
    model = YoloModel(YOLO_MODEL, threads=args.cpu)
    limits = [in_process_limit(jpeg, args.cpu, args.seconds)]
    sessions_limits = [in_process_sessions_limit(model, jpeg, args.cpu, args.seconds)]
    with tempfile.TemporaryDirectory() as log_dir:
        for name, extra in (("service", []), ("service_batching", ["--batch-max-size", "8",
                                                                    "--batch-max-delay-ms", "2"])):
            process, url = service(args.cpu, extra, log_dir)
            try:
                pipeline_at = pipeline_medians(model, jpeg, 200, ("back_to_back", "after_sleep"))
                results[name] = {"in_process_pipeline_ms": pipeline_at["back_to_back"],
                                 "in_process_pipeline_paced_ms": pipeline_at["after_sleep"],
                                 "predict": predict_runs(url, jpeg, process.pid, args.seconds)}
                if name == "service":
                    results["tritonclient_v2_infer"] = triton_runs(url, process.pid, args.seconds)
            finally:
                process.terminate()
                process.wait(timeout=30)
    sessions_limits.append(in_process_sessions_limit(model, jpeg, args.cpu, args.seconds))
    limits.append(in_process_limit(jpeg, args.cpu, args.seconds))
    limit, sessions_limit = statistics.mean(limits), statistics.mean(sessions_limits)
    results["in_process_limit"] = {"images_per_s": round(limit, 1), "before_and_after": limits,
                                   "processes": args.cpu}
    results["in_process_sessions_limit"] = {"images_per_s": round(sessions_limit, 1),
                                            "before_and_after": sessions_limits, "threads": args.cpu}
    for name in ("service", "service_batching"):
        entry, runs = results[name], results[name]["predict"]
        results[f"{name}_over_limit"] = {clients: round(run["rps"] / limit, 2)
                                         for clients, run in runs.items() if clients > 1}
        results[f"{name}_over_sessions_limit"] = {clients: round(run["rps"] / sessions_limit, 2)
                                                  for clients, run in runs.items() if clients > 1}
        results[f"{name}_latency_over_pipeline_at_1"] = round(runs[1]["p50_ms"] / entry["in_process_pipeline_ms"], 2)
        results[f"{name}_latency_over_paced_pipeline_at_1"] = round(
            runs[1]["p50_ms"] / entry["in_process_pipeline_paced_ms"], 2)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
