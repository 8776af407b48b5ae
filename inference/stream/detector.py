"""The stream's detector, reached through a node's API (``POST /api/workloads/{detector}/predict``): the node's
balancer picks the replica, retries a failed one on another, and follows rollouts and scaling, wherever in the
tree the replicas run. The stream proves who it is with a signature its origin made for it, never the token."""
from __future__ import annotations

from typing import Any

import requests

PREDICT_TIMEOUT_S = 15.0


class DetectorError(Exception):
    pass


class DetectorClient:
    def __init__(self, api_url: str, detector: str, stream_id: str, signature: str, confidence: float | None,
                 classes: list[str | int]) -> None:
        self._url = f"{api_url}/api/workloads/{detector}/predict"
        self._headers = {"Content-Type": "image/jpeg", "X-CNET-Stream": stream_id, "X-CNET-Stream-Signature": signature}
        self._confidence = confidence
        self._classes = {str(item) for item in classes}
        self._options = {**({"confidence": str(confidence)} if confidence is not None else {}),
                         **({"classes": ",".join(self._classes)} if classes else {})}
        self._session = requests.Session()

    def detect(self, jpeg: bytes) -> list[dict[str, Any]]:
        try:
            answer = self._session.post(self._url, data=jpeg, params=self._options, headers=self._headers,
                                        timeout=PREDICT_TIMEOUT_S)
        except requests.RequestException as exc:
            raise DetectorError(f"the detector could not be reached: {exc}") from None
        if answer.status_code != 200:
            try:
                message = answer.json().get("message", answer.text[:200])
            except ValueError:
                message = answer.text[:200]
            raise DetectorError(f"the detector answered {answer.status_code}: {message}")
        return [found for found in answer.json()["detections"] if self._wanted(found)]

    def _wanted(self, found: dict[str, Any]) -> bool:
        """What the stream asked for, whatever the detector did with the options (a cascade has one class)."""
        if self._confidence is not None and found.get("confidence", 1.0) < self._confidence:
            return False
        return not self._classes or str(found.get("class")) in self._classes or str(found.get("class_id")) in self._classes
