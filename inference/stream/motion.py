"""Motion gating: a frame goes to the detector only when enough of it changed since the last frame that did."""
from __future__ import annotations

import cv2
import numpy as np

_WIDTH = 160  # frames are compared small and blurred: sensor noise and compression are not motion
_PIXEL_CHANGE = 25  # a grey level difference that counts as change


class MotionGate:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold  # the fraction of the picture that must change
        self._reference: np.ndarray | None = None

    def moved(self, image: np.ndarray) -> bool:
        height = max(1, round(image.shape[0] * _WIDTH / image.shape[1]))
        small = cv2.GaussianBlur(cv2.cvtColor(cv2.resize(image, (_WIDTH, height)), cv2.COLOR_BGR2GRAY), (5, 5), 0)
        if self._reference is None or self._reference.shape != small.shape:
            self._reference = small
            return True
        changed = float(np.count_nonzero(cv2.absdiff(small, self._reference) > _PIXEL_CHANGE)) / small.size
        if changed < self.threshold:
            return False
        self._reference = small
        return True
