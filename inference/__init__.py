"""Inference services: YOLO on onnxruntime and OpenCV Haar cascades, each a Falcon app under gunicorn."""
