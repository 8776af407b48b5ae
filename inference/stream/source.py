"""A video source read on a thread of its own, through OpenCV's FFmpeg backend, keeping only the newest frame:
a slow consumer never makes frames pile up; it gets the newest when it asks.

OpenCV's FFmpeg backend (in the opencv-python-headless wheel the model services already use) reads RTSP, HTTP
MJPEG and files with one API, so the stream adds no dependency; PyAV would give finer control of demuxing,
which sampling a few frames a second does not need. A file is read at its own frame rate, as a camera would
deliver it.
"""
from __future__ import annotations

import os
import threading
import time
import urllib.parse
from dataclasses import dataclass

import cv2
import numpy as np

from cnetd.common.addresses import shown_source

OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
# RTSP over TCP: interleaved on the one connection, no UDP ports to open (namespaces, NAT, firewalls). A short
# analysis (0.5 s, 256 KiB) opens a camera in about 0.6 s where the defaults took 2.8 s, frames buffered meanwhile.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|analyzeduration;500000|probesize;262144")


class SourceError(Exception):
    """The source cannot be opened, or stopped giving frames."""


def is_live(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() in ("rtsp", "rtsps", "http", "https")



def open_capture(url: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open {shown_source(url)} (not reachable, not found, or not a video)")
    return capture


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    number: int          # counted from 1 since the source was opened
    position_ms: float   # the frame's time in the source's own timeline
    captured_at: float   # when it was read (time.time()): where capture-to-event latency starts


class LatestFrame:
    """Reads ``capture`` until it ends or fails; ``newest`` waits for a frame newer than the one given."""

    def __init__(self, capture: cv2.VideoCapture, live: bool) -> None:
        self._capture = capture
        self._live = live
        self._condition = threading.Condition()
        self._frame: Frame | None = None
        self.frames_read = 0
        self.ended: str | None = None  # why it ended, once it has
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="frames", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop:
                ok, image = self._capture.read()
                if not ok or image is None:
                    self._end("the source stopped giving frames" if self._live else "end of file")
                    return
                position_ms = float(self._capture.get(cv2.CAP_PROP_POS_MSEC))
                if not self._live:  # a file plays at its own rate, as a camera delivers frames
                    delay = started + position_ms / 1000 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                with self._condition:
                    self.frames_read += 1
                    self._frame = Frame(image, self.frames_read, position_ms, time.time())
                    self._condition.notify_all()
        except cv2.error as exc:  # a decoder error it could not skip
            self._end(f"decoding failed: {exc}")

    def _end(self, why: str) -> None:
        with self._condition:
            self.ended = why
            self._condition.notify_all()

    def newest(self, after: int, timeout_s: float) -> Frame | None:
        """The newest frame numbered above ``after``, waiting up to ``timeout_s``; None on timeout or end."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while (self._frame is None or self._frame.number <= after) and self.ended is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._condition.wait(left)
            return self._frame if self._frame is not None and self._frame.number > after else None

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=READ_TIMEOUT_MS / 1000 + 1)
        self._capture.release()
