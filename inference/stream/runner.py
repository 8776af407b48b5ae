"""The stream's loop: open the source (again, with backoff, when it drops), take the newest frame at ``fps``,
skip it when motion gating finds nothing moved, send it to the detector, and keep each frame with detections as
an event (snapshot, kept events, webhook, MQTT).

A frame is sampled at most ``fps`` times a second; when detection takes longer than that, the frames due
meanwhile are dropped (counted), never queued.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from cnetd.common.addresses import shown_source
from cnetd.common.event_log import EVENTS_FILE, EventWriter
from inference.stream.detector import DetectorClient, DetectorError
from inference.stream.motion import MotionGate
from inference.stream.publish import Sink
from inference.stream.source import Frame, LatestFrame, SourceError, is_live, open_capture
from inference.stream.status import StreamStatus

log = logging.getLogger("stream")
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0
SNAPSHOTS_DIR, SNAPSHOTS_KEPT = "snapshots", 50
JPEG_QUALITY = 90


@dataclass
class StreamSettings:
    stream_id: str
    source: str
    fps: float
    folder: Path
    confidence: float | None = None
    classes: list[str] = field(default_factory=list)
    motion_threshold: float | None = None
    snapshot: bool = False
    keep_events: int = 1000


class Backoff:
    def __init__(self) -> None:
        self._next = BACKOFF_FIRST_S

    def reset(self) -> None:
        self._next = BACKOFF_FIRST_S

    def wait_s(self) -> float:
        wait, self._next = self._next, min(BACKOFF_MAX_S, self._next * 2)
        return wait


class StreamRunner:
    def __init__(self, settings: StreamSettings, detector: DetectorClient, sinks: list[Sink]) -> None:
        self.settings = settings
        self._detector = detector
        self._sinks = sinks
        self.status = StreamStatus(settings.folder)
        self.status.publishers = {sink.name: sink.counts for sink in sinks}
        self._events = EventWriter(settings.folder / EVENTS_FILE, settings.keep_events)
        self._gate = MotionGate(settings.motion_threshold) if settings.motion_threshold is not None else None
        self._snapshots = settings.folder / SNAPSHOTS_DIR
        self._snapshots.mkdir(exist_ok=True)
        self._stopping = threading.Event()
        self._read_before = 0  # frames read on the source's earlier connections

    def stop(self, *_: Any) -> None:
        self._stopping.set()

    def run(self) -> int:
        """Until stopped (0), or a file source ends (0)."""
        backoff, live = Backoff(), is_live(self.settings.source)
        while not self._stopping.is_set():
            try:
                frames = LatestFrame(open_capture(self.settings.source), live)
            except SourceError as exc:
                self._reconnect(str(exc), backoff)
                continue
            backoff.reset()
            self.status.change("running")
            log.info("reading %s", shown_source(self.settings.source))
            try:
                self._follow(frames)
            finally:
                frames.close()
                self._read_before += frames.frames_read
                self.status.counts["frames_read"] = self._read_before
            if self._stopping.is_set():
                break
            if not live:
                self.status.change("ended", frames.ended)
                break
            self._reconnect(frames.ended or "the source stopped", backoff)
        for sink in self._sinks:
            sink.close()
        self.status.write()
        return 0

    def _reconnect(self, error: str, backoff: Backoff) -> None:
        wait_s = backoff.wait_s()
        log.warning("%s; trying again in %.1f s", error, wait_s)
        self.status.counts["reconnects"] += 1
        self.status.change("reconnecting", error)
        self._stopping.wait(wait_s)

    def _follow(self, frames: LatestFrame) -> None:
        interval_s = 1.0 / self.settings.fps
        due, last_number = time.monotonic(), 0
        while not self._stopping.is_set() and frames.ended is None:
            self._stopping.wait(max(0.0, due - time.monotonic()))
            frame = frames.newest(last_number, timeout_s=interval_s * 2 + 1)
            self.status.counts["frames_read"] = self._read_before + frames.frames_read
            self.status.write_now_and_then()
            if frame is None:
                continue
            last_number = frame.number
            self.status.sampled()
            self._process(frame)
            due += interval_s
            late = time.monotonic() - due
            if late > interval_s:  # the frames due while it was detected are not waited for: dropped
                missed = int(late // interval_s)
                self.status.counts["frames_dropped"] += missed
                due += missed * interval_s

    def _process(self, frame: Frame) -> None:
        if self._gate is not None and not self._gate.moved(frame.image):
            self.status.counts["frames_skipped_motion"] += 1
            return
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        try:
            detections = self._detector.detect(jpeg.tobytes()) if ok else None
        except DetectorError as exc:
            detections = None
            self.status.last_error = str(exc)
            log.warning("frame %d: %s", frame.number, exc)
        if detections is None:
            self.status.counts["frames_failed"] += 1
            return
        self.status.counts["frames_sent"] += 1
        if detections:
            self._event(frame, detections)

    def _event(self, frame: Frame, detections: list[dict[str, Any]]) -> None:
        snapshot = self._snapshot(frame, detections) if self.settings.snapshot else None
        latency_s = time.time() - frame.captured_at
        event = self._events.append({
            "time": round(time.time(), 3), "frame": frame.number, "position_ms": round(frame.position_ms, 1),
            "captured_at": round(frame.captured_at, 3), "latency_ms": round(latency_s * 1000, 1),
            "detections": detections, "snapshot": snapshot})
        self.status.event(latency_s, snapshot)
        self.status.write()  # counted before it goes out: a reader who saw the event sees it in the status
        for sink in self._sinks:
            try:
                sink.publish({"stream": self.settings.stream_id, **event})
            except Exception as exc:  # a sink's trouble never stops the frames
                sink.counts["failed"] += 1
                log.warning("%s: %s", sink.name, exc)

    def _snapshot(self, frame: Frame, detections: list[dict[str, Any]]) -> str:
        """The frame with its boxes drawn, kept as ``snapshots/SEQ.jpg`` (the last SNAPSHOTS_KEPT of them)."""
        image = frame.image.copy()
        for detection in detections:
            x1, y1, x2, y2 = (int(round(value)) for value in detection["bbox"])
            cv2.rectangle(image, (x1, y1), (x2, y2), (0, 200, 0), 2)
            cv2.putText(image, f"{detection['class']} {detection['confidence']:.2f}", (x1, max(12, y1 - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 200, 0), 1)
        name = f"{self._events.next_seq:010d}.jpg"
        cv2.imwrite(str(self._snapshots / name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        for old in sorted(self._snapshots.glob("*.jpg"))[:-SNAPSHOTS_KEPT]:
            old.unlink(missing_ok=True)
        return f"{SNAPSHOTS_DIR}/{name}"


def install_stop(runner: StreamRunner) -> None:
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
