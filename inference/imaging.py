"""Image decoding for inference: bytes → BGR uint8 array, as ``cv2.imdecode`` reads it."""
from __future__ import annotations

import base64
import binascii
import os

import cv2
import numpy as np

from inference import MAX_IMAGE_PIXELS_ENV


class InvalidImage(ValueError):
    """Bytes that are not an image OpenCV can read."""


class ImageTooLarge(InvalidImage):
    """An image whose header declares more pixels than the service decodes."""


def looks_like_image(head: bytes) -> bool:
    """Whether bytes begin as a JPEG, PNG, WebP or BMP file does (what a body sent with no Content-Type,
    or a generic one, holds when it is an image)."""
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")) or \
        (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def decode_image(data: bytes) -> np.ndarray:
    """BGR, EXIF orientation applied, grey expanded to 3 channels, alpha dropped (``IMREAD_COLOR``)."""
    if not data:
        raise InvalidImage("the image is empty")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise ImageTooLarge(f"the image declares more than {os.environ[MAX_IMAGE_PIXELS_ENV]} pixels; "
                                "it was not decoded") from None
        raise InvalidImage("the bytes are not an image OpenCV can decode") from None
    if image is None:
        raise InvalidImage("the bytes are not an image OpenCV can decode (JPEG, PNG, BMP, WebP, TIFF …)")
    return image


def decode_base64(text: str) -> bytes:
    """The bytes of a base64 image, with or without a ``data:image/…;base64,`` prefix."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image is not valid base64") from None
