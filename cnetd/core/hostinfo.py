"""Detects this machine's resources for the ``auto`` values of the ``resources`` config section."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import Any, Iterator

log = logging.getLogger(__name__)


def detect_cpu() -> float:
    return float(os.cpu_count() or 1)


def detect_memory() -> int:
    """The machine's RAM (/proc/meminfo's MemTotal), read without psutil: every node process reads its config,
    and psutil would cost each about 0.9 MiB."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def detect_storage(path: str) -> int:
    """Free bytes on the filesystem that will hold the node's data (what an unprivileged user may take)."""
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "/"
    return shutil.disk_usage(existing).free


def declared_gpus(count: int) -> list[dict[str, Any]]:
    """Devices of a declared ``gpu: N``: indices only, nothing measured."""
    return [{"index": index, "name": "declared", "memory_total_bytes": None} for index in range(count)]


class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine; the message says why."""


@contextlib.contextmanager
def _nvml_devices() -> Iterator[tuple[Any, list[tuple[int, Any]]]]:
    """NVML's module and (index, handle) of every NVIDIA GPU, NVML shut down afterwards; any NVML failure,
    here or in the caller's queries, becomes NvmlUnavailable."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("nvidia-ml-py is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML unavailable: {exc}") from None
    try:
        yield pynvml, [(index, pynvml.nvmlDeviceGetHandleByIndex(index))
                       for index in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML failed: {exc}") from None
    finally:
        pynvml.nvmlShutdown()


def detect_gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs seen through NVML (index, name, total memory); none, with a log line saying why."""
    try:
        with _nvml_devices() as (nvml, handles):
            devices = [{"index": index, "name": _text(nvml.nvmlDeviceGetName(handle)),
                        "memory_total_bytes": int(nvml.nvmlDeviceGetMemoryInfo(handle).total)}
                       for index, handle in handles]
    except NvmlUnavailable as exc:
        log.info("gpu auto: 0 GPUs (%s)", exc)
        return []
    log.info("gpu auto: %d GPU(s): %s", len(devices), ", ".join(device["name"] for device in devices))
    return devices


def gpu_usage() -> dict[int, dict[str, Any]]:
    """Live memory use and utilization per NVIDIA GPU index; empty without NVML."""
    try:
        with _nvml_devices() as (nvml, handles):
            return {index: {"memory_used_bytes": int(nvml.nvmlDeviceGetMemoryInfo(handle).used),
                            "utilization_percent": int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)}
                    for index, handle in handles}
    except NvmlUnavailable:
        return {}


def _text(name: str | bytes) -> str:
    return name.decode() if isinstance(name, bytes) else name  # older nvidia-ml-py returns bytes
