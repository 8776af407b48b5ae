"""Inference services: YOLO on onnxruntime and OpenCV Haar cascades, each a Falcon app under gunicorn.

OpenCV reads its decoded-image pixel limit once, when it loads, and every module here that uses it is
imported after this package: so the limit is set here, before any ``import cv2``. An image whose header
declares more pixels is refused before anything is decoded (a 109 KB PNG can declare 30000×30000).
"""
import os

MAX_IMAGE_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"  # set it in a service's environment to change the limit
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
os.environ.setdefault(MAX_IMAGE_PIXELS_ENV, str(DEFAULT_MAX_IMAGE_PIXELS))
