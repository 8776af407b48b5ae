"""Where a stream's events go besides its kept events: a webhook (POST JSON, retried, from a bounded queue) and
an MQTT topic (paho-mqtt, whose own queue is bounded). Neither ever holds up the frames: a full queue drops
its oldest event, counted."""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any, Protocol

import requests

from cnetd.common.addresses import shown_origin

log = logging.getLogger("stream.publish")
QUEUE_SIZE = 100
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_RETRIES = (0.5, 1.0, 2.0)  # the waits between tries


class Sink(Protocol):
    name: str
    counts: dict[str, int]

    def publish(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Webhook:
    name = "webhook"

    def __init__(self, url: str) -> None:
        self._url = url
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._session = requests.Session()
        self.counts = {"sent": 0, "failed": 0, "dropped": 0}
        self._thread = threading.Thread(target=self._send_all, name="webhook", daemon=True)
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.counts["dropped"] += 1
                except queue.Empty:
                    pass

    def _send_all(self) -> None:
        while (event := self._queue.get()) is not None:
            self.counts["sent" if self._send(event) else "failed"] += 1

    def _send(self, event: dict[str, Any]) -> bool:
        for wait_s in (*WEBHOOK_RETRIES, None):
            try:
                answer = self._session.post(self._url, json=event, timeout=WEBHOOK_TIMEOUT_S)
                if answer.status_code < 500 and answer.status_code != 429:
                    return answer.ok
            except requests.RequestException as exc:
                # the error quotes the URL's path, which may be the hook's secret
                log.debug("webhook %s: %s", shown_origin(self._url), type(exc).__name__)
            if wait_s is not None:
                time.sleep(wait_s)
        return False

    def close(self) -> None:
        self.publish(None)  # type: ignore[arg-type]  # the sender's end
        self._thread.join(timeout=WEBHOOK_TIMEOUT_S)


class Mqtt:
    name = "mqtt"

    def __init__(self, host: str, port: int, topic: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt  # only streams that publish to MQTT load it
        self._topic = topic
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.max_queued_messages_set(QUEUE_SIZE)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.counts = {"sent": 0, "failed": 0, "dropped": 0}
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()

    def publish(self, event: dict[str, Any]) -> None:
        info = self._client.publish(self._topic, json.dumps(event, separators=(",", ":")), qos=1)
        self.counts["sent" if info.rc == 0 else "dropped"] += 1

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
