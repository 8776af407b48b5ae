"""Detects this machine's resources for the ``auto`` values of the ``resources`` config section."""
from __future__ import annotations

import logging
import os
from typing import Any

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


def declared_gpus(count: int) -> list[dict[str, Any]]:
    """Devices of a declared ``gpu: N``: indices only, nothing measured."""
    return [{"index": index, "name": "declared", "memory_total_bytes": None} for index in range(count)]


def detect_gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs seen through NVML (index, name, total memory); none, with a log line saying why."""
    try:
        import pynvml
    except ImportError:
        log.info("gpu auto: 0 GPUs (nvidia-ml-py is not installed)")
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.info("gpu auto: 0 GPUs (NVML unavailable: %s)", exc)
        return []
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            devices.append({"index": index, "name": name.decode() if isinstance(name, bytes) else name,
                            "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)})
        log.info("gpu auto: %d GPU(s): %s", len(devices), ", ".join(device["name"] for device in devices))
        return devices
    finally:
        pynvml.nvmlShutdown()


def gpu_usage() -> dict[int, dict[str, Any]]:
    """Live memory use and utilization per NVIDIA GPU index; empty without NVML."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return {}
    try:
        usage = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            usage[index] = {"memory_used_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).used),
                            "utilization_percent": int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)}
        return usage
    except pynvml.NVMLError:
        return {}
    finally:
        pynvml.nvmlShutdown()
