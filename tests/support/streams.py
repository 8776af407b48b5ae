"""Real cameras and consumers for the stream tests: an H.264 clip made by ffmpeg from known pictures, served by
GStreamer's RTSP server (``rtsp_server.py``); an HTTP MJPEG server; a mosquitto broker with a subscriber
process; a webhook receiver; and a Server-Sent Events reader."""
from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import cv2
import requests

from tests.support.nodes import free_port, wait_for

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with the GObject bindings GStreamer's RTSP server needs
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
CLIP_FPS = 10
FRAME_SIZE = (640, 480)


def make_clip(path: Path, pictures: list[str], seconds_each: float) -> Path:
    """An H.264 MP4 of ``pictures`` one after another, ``seconds_each`` each at CLIP_FPS (a key frame a second; its
    index first, so a truncated copy still opens)."""
    inputs: list[str] = []
    for picture in pictures:
        inputs += ["-loop", "1", "-framerate", str(CLIP_FPS), "-t", str(seconds_each), "-i", picture]
    scaled = "".join(f"[{index}]scale={FRAME_SIZE[0]}:{FRAME_SIZE[1]},setsar=1[v{index}];" for index in range(len(pictures)))
    joined = "".join(f"[v{index}]" for index in range(len(pictures)))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex",
                    f"{scaled}{joined}concat=n={len(pictures)}:v=1,format=yuv420p", "-c:v", "libx264", "-g",
                    str(CLIP_FPS), "-bf", "0", "-movflags", "+faststart", str(path)], check=True, timeout=60)
    return path


def decoded_frames(path: Path) -> list[Any]:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames
        frames.append(image)


class RtspServer:
    """``rtsp://HOST:PORT/clip``, each client from the clip's start, in real time."""

    def __init__(self, clip: Path, host: str = "127.0.0.1", launcher: list[str] | None = None) -> None:
        self.clip, self.host, self.launcher = clip, host, launcher or []
        self.port = free_port() if not launcher else 8554
        self.url = f"rtsp://{host}:{self.port}/clip"
        self.process: subprocess.Popen | None = None

    def start(self) -> RtspServer:
        self.process = subprocess.Popen([*self.launcher, SYSTEM_PYTHON, str(RTSP_SERVER), str(self.clip), str(self.port),
                                         self.host], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        assert line.strip() == "ready", f"the RTSP server did not start: {line}"
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def rtsp_server(clip: Path, host: str = "127.0.0.1", launcher: list[str] | None = None) -> Iterator[RtspServer]:
    server = RtspServer(clip, host, launcher)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def mjpeg_server(jpegs: list[bytes], fps: float = CLIP_FPS) -> Iterator[str]:
    """An endless HTTP MJPEG camera (multipart/x-mixed-replace) cycling through ``jpegs``; yields its URL."""

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                index = 0
                while not stopping.is_set():
                    jpeg = jpegs[index % len(jpegs)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                     + jpeg + b"\r\n")
                    index += 1
                    time.sleep(1 / fps)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    stopping = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/camera.mjpg"
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook endpoint; yields its URL and the JSON bodies POSTed to it, as they come."""
    received: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


_SUBSCRIBER = """
import sys
import paho.mqtt.client as mqtt
port, topic = int(sys.argv[1]), sys.argv[2]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
client.on_connect = lambda client, data, flags, code, properties: (client.subscribe(topic, qos=1), print("subscribed", flush=True))
client.on_message = lambda client, data, message: print(message.payload.decode(), flush=True)
client.connect("127.0.0.1", port)
client.loop_forever()
"""


@contextlib.contextmanager
def mosquitto_with_subscriber(topic: str) -> Iterator[tuple[int, list[str]]]:
    """A real mosquitto broker on a free loopback port, and a subscriber process of ``topic``; yields the port and
    the messages the subscriber printed, as they come."""
    port = free_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subscriber: subprocess.Popen | None = None
    messages: list[str] = []
    try:
        def subscribe() -> bool:
            nonlocal subscriber
            subscriber = subprocess.Popen([sys.executable, "-c", _SUBSCRIBER, str(port), topic], text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if subscriber.stdout and subscriber.stdout.readline().strip() == "subscribed":
                return True
            subscriber.wait(timeout=5)
            time.sleep(0.2)  # the broker was not listening yet
            return False
        wait_for(subscribe, timeout_s=20)
        reader = threading.Thread(target=lambda: messages.extend(iter(subscriber.stdout.readline, "")), daemon=True)
        reader.start()
        yield port, messages
    finally:
        for process in (subscriber, broker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def read_events(url: str, count: int, timeout_s: float, headers: dict[str, str] | None = None,
                params: dict[str, Any] | None = None) -> tuple[requests.Response, list[dict[str, Any]]]:
    """The first ``count`` events of a Server-Sent Events stream (fewer when it ends or ``timeout_s`` passes)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    with requests.get(url, headers=headers, params=params, stream=True, timeout=(5, timeout_s)) as answer:
        if answer.status_code != 200:
            return answer, events
        for line in answer.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            if len(events) >= count or time.monotonic() > deadline:
                break
    return answer, events
