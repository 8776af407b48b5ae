"""Test assets from PyPI packages: nudenet's real YOLOv8n ONNX model and scikit-image's sample images."""
from __future__ import annotations

import os
import struct
import zlib

import nudenet
import skimage

YOLO_MODEL = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
ASTRONAUT = os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")
COFFEE = os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png")


def iou(first: list[float], second: list[float]) -> float:
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    overlap = width * height
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return overlap / (area(first) + area(second) - overlap)


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG of ``width`` × ``height`` zeros: about 110 KB for 30000², 2.7 GB once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
