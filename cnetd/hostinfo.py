"""Detects this machine's resources for the ``auto`` values of the ``resources`` config section."""
from __future__ import annotations

import logging
import os

import psutil

log = logging.getLogger(__name__)


def detect_cpu() -> float:
    return float(psutil.cpu_count(logical=True) or 1)


def detect_memory() -> int:
    return int(psutil.virtual_memory().total)


def detect_storage(path: str) -> int:
    """Free bytes on the filesystem that will hold the node's data."""
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "/"
    return int(psutil.disk_usage(existing).free)


def detect_gpus() -> int:
    """Number of NVIDIA GPUs seen through NVML; 0, with a log line saying why, when there is none."""
    try:
        import pynvml
    except ImportError:
        log.info("gpu auto: 0 GPUs (nvidia-ml-py is not installed)")
        return 0
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.info("gpu auto: 0 GPUs (NVML unavailable: %s)", exc)
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()
