"""The YOLO service against what the machine can do, in one run: the in-process pipeline and its limit
beside /predict at 1, 4 and 16 clients, CPU seconds per request, batching off and on, and a
``perf_analyzer``-style run of the KServe v2 protocol through ``tritonclient``.

    .venv/bin/python bench/predict_latency.py [--cpu 2] [--seconds 6]

One 640×480 JPEG (scikit-image's astronaut). Baselines, in this process and its children:
- the in-process pipeline (decode, letterbox, ``session.run``, NMS) with a session of ``--cpu`` threads:
  the latency one client could get at best;
- the in-process limit: ``--cpu`` processes, each a session of 1 thread running the pipeline as fast as it
  can: the images per second the cores can do.
The service is ``cnet-inference-yolo --threads CPU`` (what a workload of that cpu gets), sent the JPEG as
a raw ``image/jpeg`` body. Prints JSON; medians and p99 in milliseconds, ratios against the baselines.
"""
from __future__ import annotations

import argparse
import multiprocessing
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
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.imaging import decode_image  # noqa: E402
from inference.yolo_model import YoloModel  # noqa: E402
from tests.support.assets import ASTRONAUT, YOLO_MODEL  # noqa: E402
from tests.support.nodes import VENV_BIN, free_port, wait_until_answers  # noqa: E402

JPEG_TYPE = {"Content-Type": "image/jpeg"}


def the_jpeg() -> bytes:
    image = cv2.resize(cv2.imread(ASTRONAUT), (640, 480), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def pipeline(model: YoloModel, jpeg: bytes) -> None:
    model.predict(decode_image(jpeg), confidence=0.25)


def pipeline_ms(model: YoloModel, jpeg: bytes, runs: int) -> float:
    """The median milliseconds of the in-process pipeline, once warm."""
    for _ in range(10):
        pipeline(model, jpeg)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        pipeline(model, jpeg)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def _limit_worker(jpeg: bytes, seconds: float, done: Any) -> None:
    cv2.setNumThreads(1)
    model = YoloModel(YOLO_MODEL, threads=1)
    for _ in range(5):
        pipeline(model, jpeg)
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pipeline(model, jpeg)
        count += 1
    done.put(count)


def in_process_limit(jpeg: bytes, processes: int, seconds: float) -> dict[str, float]:
    """Images per second of ``processes`` processes of one 1-thread session each (each counts its own
    ``seconds`` once loaded and warm)."""
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    workers = [context.Process(target=_limit_worker, args=(jpeg, seconds, done)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [done.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    return {"images_per_s": round(sum(counts) / seconds, 1), "processes": processes}


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def tree_cpu_s(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(_cpu_s(process) for process in [root, *root.children(recursive=True)])


def load(send: Callable[[requests.Session], None], clients: int, seconds: float, service_pid: int) -> dict[str, float]:
    """``clients`` threads sending for ``seconds``: requests/s, p50 and p99 ms, service CPU s per request."""
    latencies: list[float] = []
    lock, stop = threading.Lock(), threading.Event()

    def client() -> None:
        session = requests.Session()
        send(session)  # its connection made
        while not stop.is_set():
            started = time.perf_counter()
            send(session)
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
    latencies.sort()
    return {"rps": round(len(latencies) / elapsed, 1), "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "cpu_s_per_request": round((tree_cpu_s(service_pid) - cpu_before) / len(latencies), 4),
            "cores_busy": round((tree_cpu_s(service_pid) - cpu_before) / elapsed, 2)}


def service(cpu: int, extra: list[str], log_dir: str, model: str = YOLO_MODEL) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([str(VENV_BIN / "cnet-inference-yolo"), "--model", model, "--port", str(port),
                                "--threads", str(cpu), "--log-dir", log_dir, "--name", "faces", *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_answers(f"http://127.0.0.1:{port}/health", process=process)
    return process, f"http://127.0.0.1:{port}"


def predict_runs(url: str, jpeg: bytes, pid: int, seconds: float,
                 client_counts: tuple[int, ...] = (1, 4, 16)) -> dict[int, dict[str, float]]:
    def send(session: requests.Session) -> None:
        assert session.post(f"{url}/predict", data=jpeg, headers=JPEG_TYPE).status_code == 200
    return {clients: load(send, clients, seconds, pid) for clients in client_counts}


def triton_runs(url: str, pid: int, seconds: float) -> dict[int, dict[str, float]]:
    """What ``perf_analyzer --concurrency-range`` measures: infer on a random tensor of the model's input
    shape, binary data both ways, through tritonclient."""
    import tritonclient.http as triton

    host = url.removeprefix("http://")
    tensor = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)

    def sender() -> Callable[[requests.Session], None]:
        own = threading.local()  # a client per thread (geventhttpclient's hub is the thread's), per run

        def send(_: requests.Session) -> None:
            if not hasattr(own, "client"):
                own.client = triton.InferenceServerClient(host)
            request = triton.InferInput("images", list(tensor.shape), "FP32")
            request.set_data_from_numpy(tensor, binary_data=True)
            own.client.infer("faces", [request], outputs=[triton.InferRequestedOutput("output0", binary_data=True)])
        return send
    return {concurrency: load(sender(), concurrency, seconds, pid) for concurrency in (1, 4, 16)}


def service_arguments() -> argparse.Namespace:
    """--cpu (each service's cpu requirement, its threads) and --seconds (per measured run)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", type=int, default=2, help="each service's cpu requirement (its threads)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per measured run")
    return parser.parse_args()


def main() -> None:
    args = service_arguments()
    jpeg = the_jpeg()
    results: dict[str, Any] = {"image": "640x480 JPEG", "jpeg_bytes": len(jpeg), "cpu": args.cpu,
                               "machine_cores": psutil.cpu_count()}
    results["in_process_pipeline_ms"] = pipeline_ms(YoloModel(YOLO_MODEL, threads=args.cpu), jpeg, 200)
    limit = in_process_limit(jpeg, args.cpu, args.seconds)
    results["in_process_limit"] = limit
    with tempfile.TemporaryDirectory() as log_dir:
        for name, extra in (("service", []), ("service_batching", ["--batch-max-size", "8",
                                                                    "--batch-max-delay-ms", "2"])):
            process, url = service(args.cpu, extra, log_dir)
            try:
                runs = predict_runs(url, jpeg, process.pid, args.seconds)
                results[name] = runs
                results[f"{name}_over_limit"] = {clients: round(run["rps"] / limit["images_per_s"], 2)
                                                 for clients, run in runs.items() if clients > 1}
                results[f"{name}_latency_over_pipeline_at_1"] = round(
                    runs[1]["p50_ms"] / results["in_process_pipeline_ms"], 2)
                if name == "service":
                    results["tritonclient_v2_infer"] = triton_runs(url, process.pid, args.seconds)
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
