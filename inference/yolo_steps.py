"""YOLO pre- and post-processing as pure numpy functions, step for step the Ultralytics pipeline.

letterbox → to_tensor → (session) → decode_output (v5 / v8-v11 / end-to-end) → non_max_suppression
→ scale_boxes. Each step is tested on its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = (114, 114, 114)
MAX_WH = 7680  # class offset for class-aware NMS in one pass, as Ultralytics does
MAX_NMS_BOXES = 30000


class Layout:
    V5 = "yolov5"          # (1, N, 5 + C): cx, cy, w, h, objectness, class probabilities
    V8 = "yolov8"          # (1, 4 + C, N): cx, cy, w, h, class scores (YOLOv8 / YOLO11)
    END_TO_END = "end2end"  # (1, N, 6): x1, y1, x2, y2, score, class (YOLOv10 / YOLO26 exports)


@dataclass(frozen=True)
class Letterboxed:
    image: np.ndarray          # size × size × 3, BGR
    ratio: float               # scale applied to the original
    pad: tuple[float, float]   # (left, top) padding in pixels


def letterbox(image: np.ndarray, size: tuple[int, int]) -> Letterboxed:
    """Resize keeping the aspect ratio (r = min(S/h, S/w), INTER_LINEAR) and pad centred with 114 grey."""
    height, width = image.shape[:2]
    target_h, target_w = size
    ratio = min(target_h / height, target_w / width)
    new_w, new_h = int(round(width * ratio)), int(round(height * ratio))
    pad_w, pad_h = (target_w - new_w) / 2, (target_h - new_h) / 2
    if (width, height) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(pad_h - 0.1)), int(round(pad_h + 0.1))
    left, right = int(round(pad_w - 0.1)), int(round(pad_w + 0.1))
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=PAD_VALUE)
    return Letterboxed(image, ratio, (pad_w, pad_h))


def to_tensor(image: np.ndarray) -> np.ndarray:
    """BGR HWC uint8 → RGB NCHW float32 in [0, 1]."""
    rgb = image[..., ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(rgb, dtype=np.float32)[None] / np.float32(255.0)


def detect_layout(output_shape: tuple[int, ...], class_count: int | None) -> str:
    """Which YOLO output layout a (1, A, B) tensor is, using the class count when the metadata gives it."""
    if len(output_shape) != 3:
        raise ValueError(f"expected a (batch, A, B) output, got shape {output_shape}")
    _, rows, cols = output_shape
    if class_count is not None:
        if rows == 4 + class_count and cols != 6:
            return Layout.V8
        if cols == 5 + class_count:
            return Layout.V5
        if cols == 6:
            return Layout.END_TO_END
        raise ValueError(f"output shape {output_shape} matches no YOLO layout for {class_count} classes")
    if cols == 6:
        return Layout.END_TO_END
    return Layout.V8 if rows < cols else Layout.V5


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    xyxy = np.empty_like(boxes)
    half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
    xyxy[:, 0], xyxy[:, 1] = boxes[:, 0] - half_w, boxes[:, 1] - half_h
    xyxy[:, 2], xyxy[:, 3] = boxes[:, 0] + half_w, boxes[:, 1] + half_h
    return xyxy


def decode_output(output: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw output → (xyxy boxes, best score, class id) per candidate."""
    if layout == Layout.V8:
        rows = output[0].T
        scores_per_class = rows[:, 4:]
        boxes = xywh_to_xyxy(rows[:, :4])
    elif layout == Layout.V5:
        rows = output[0]
        scores_per_class = rows[:, 5:] * rows[:, 4:5]
        boxes = xywh_to_xyxy(rows[:, :4])
    elif layout == Layout.END_TO_END:
        rows = output[0]
        return rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int64)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    class_ids = scores_per_class.argmax(axis=1)
    scores = scores_per_class[np.arange(len(class_ids)), class_ids]
    return boxes.astype(np.float32), scores.astype(np.float32), class_ids.astype(np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, highest score first (torchvision's semantics)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = (np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])).clip(0)
        height = (np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])).clip(0)
        overlap = width * height
        iou = overlap / (areas[best] + areas[rest] - overlap + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def select(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, layout: str, confidence: float,
           iou: float, max_detections: int, classes: list[int] | None) -> np.ndarray:
    """Indices of the detections to keep: score > confidence, class filter, class-aware NMS, best first."""
    candidates = np.flatnonzero(scores > confidence)
    if classes is not None:
        candidates = candidates[np.isin(class_ids[candidates], classes)]
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")][:MAX_NMS_BOXES]
    if layout == Layout.END_TO_END:  # the model already suppressed duplicates
        return candidates[:max_detections]
    offset = boxes[candidates] + (class_ids[candidates] * MAX_WH)[:, None]
    kept = nms(offset, scores[candidates], iou)
    return candidates[kept][:max_detections]


def scale_boxes(boxes: np.ndarray, letterboxed: Letterboxed, original_hw: tuple[int, int]) -> np.ndarray:
    """Boxes in letterbox pixels → original-image pixels (padding removed, divided by r, clipped)."""
    size_h, size_w = letterboxed.image.shape[:2]
    height, width = original_hw
    gain = min(size_h / height, size_w / width)
    pad_x = round((size_w - width * gain) / 2 - 0.1)
    pad_y = round((size_h - height * gain) / 2 - 0.1)
    scaled = boxes.copy()
    scaled[:, [0, 2]] = ((scaled[:, [0, 2]] - pad_x) / gain).clip(0, width)
    scaled[:, [1, 3]] = ((scaled[:, [1, 3]] - pad_y) / gain).clip(0, height)
    return scaled
