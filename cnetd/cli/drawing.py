"""``cnet predict --draw``: the image with its detections' boxes and labels, written where asked."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

BOX_COLOUR = (0, 200, 255)  # BGR


def draw_detections(image_path: Path, detections: list[dict[str, Any]], out_path: Path) -> None:
    image = cv2.imdecode(np.fromfile(str(image_path), dtype=np.uint8), cv2.IMREAD_COLOR)
    for item in detections:
        x1, y1, x2, y2 = (int(round(value)) for value in item["bbox"])
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, 2)
        cv2.putText(image, f"{item['class']} {item['confidence']:.2f}", (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOUR, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(out_path), image):
        raise OSError(f"could not write {out_path} (use a .jpg or .png name)")
