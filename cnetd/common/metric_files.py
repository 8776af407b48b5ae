"""Counters in prometheus_client's multiprocess files, written, and those files read, without importing
prometheus_client: its package import (exposition with http.server, wsgiref and email) costs a process about
3.3 MiB, and the register and the scheduler only add to counters that the API's /metrics sums.

The file format is prometheus_client's (``mmap_dict``): a 4-byte int saying how much of the file is used,
4 bytes of padding, then entries of a 4-byte key length, the UTF-8 JSON key ``[metric, sample, labels,
help]`` padded to 8 bytes, and two doubles (value, timestamp). A process writes ``counter_cnet_<pid>.db``
in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client reads any ``counter_*.db`` as counters), a name of its
own so that a process which also counts through prometheus_client (the API) keeps two writers apart.
``tests/unit/test_metric_files.py`` checks both directions against prometheus_client itself.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
import threading
from pathlib import Path
from typing import Iterator

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_INITIAL_SIZE = 1 << 16
_LENGTH = struct.Struct("i")
_VALUE = struct.Struct("dd")


def _padding(length: int) -> int:
    """Spaces after a key of ``length`` bytes, so that its value starts 8-byte aligned."""
    return 8 - (length + 4) % 8


def _entries(data: bytes | mmap.mmap) -> Iterator[tuple[str, float, int]]:
    """Each (key, value, offset of the value) in a file's bytes."""
    used, offset = _LENGTH.unpack_from(data, 0)[0], 8
    while offset < used:
        length = _LENGTH.unpack_from(data, offset)[0]
        if offset + length > used:
            raise ValueError("a metrics file entry runs past the file's used size")
        key = bytes(data[offset + 4:offset + 4 + length]).decode()
        offset += 4 + length + _padding(length)
        yield key, _VALUE.unpack_from(data, offset)[0], offset
        offset += _VALUE.size


def samples(path: Path) -> Iterator[tuple[str, dict[str, str], float]]:
    """Each (metric name, labels, value) in one multiprocess file."""
    data = path.read_bytes()
    for key, value, _ in _entries(data):
        metric, _sample, labels, _help = json.loads(key)
        yield metric, labels, value


class _CounterFile:
    """One process's counter file, mapped for writing. Not thread safe: its counters hold the lock."""

    def __init__(self, path: Path) -> None:
        self._handle = open(path, "a+b")
        size = os.fstat(self._handle.fileno()).st_size
        if size == 0:
            self._handle.truncate(_INITIAL_SIZE)
            size = _INITIAL_SIZE
        self._map = mmap.mmap(self._handle.fileno(), size)
        self._used = _LENGTH.unpack_from(self._map, 0)[0] or 8
        self._map[0:4] = _LENGTH.pack(self._used)
        self._offsets = {key: offset for key, _, offset in _entries(self._map)}  # a reused pid's file goes on

    def add(self, key: str, amount: float) -> None:
        if key not in self._offsets:
            self._append(key)
        offset = self._offsets[key]
        value = _VALUE.unpack_from(self._map, offset)[0]
        self._map[offset:offset + _VALUE.size] = _VALUE.pack(value + amount, 0.0)  # one slice: never reads as 0

    def _append(self, key: str) -> None:
        encoded = key.encode()
        entry = _LENGTH.pack(len(encoded)) + encoded + b" " * _padding(len(encoded)) + _VALUE.pack(0.0, 0.0)
        while self._used + len(entry) > len(self._map):
            self._handle.truncate(len(self._map) * 2)
            self._map = mmap.mmap(self._handle.fileno(), len(self._map) * 2)
        self._map[self._used:self._used + len(entry)] = entry
        self._used += len(entry)
        self._map[0:4] = _LENGTH.pack(self._used)
        self._offsets[key] = self._used - _VALUE.size


class _Files:
    """The counter file of this process (opened on the first count, again after a fork), when the process
    has a multiprocess dir; without one, counts stay in memory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pid = -1
        self._file: _CounterFile | None = None

    def add(self, key: str, amount: float) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            directory = os.environ.get(MULTIPROCESS_ENV)
            self._file = _CounterFile(Path(directory) / f"counter_cnet_{self._pid}.db") if directory else None
        if self._file is not None:
            self._file.add(key, amount)


_FILES = _Files()


class Counter:
    """A monotonic count, optionally by labels: ``Counter(name, help, ["outcome"]).labels("hit").inc()``, as
    prometheus_client's Counter is used (a trailing ``_total`` of the name is the sample's, as there)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] | list[str] = (),
                 labelvalues: tuple[str, ...] = ()) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._labelvalues = labelvalues
        self._children: dict[tuple[str, ...], Counter] = {}
        self._key = json.dumps([self._name, f"{self._name}_total", dict(zip(self._labelnames, labelvalues)),
                                documentation], sort_keys=True)
        self.value = 0.0

    def labels(self, *values: str) -> Counter:
        if len(values) != len(self._labelnames) or self._labelvalues:
            raise ValueError(f"{self._name} takes labels {self._labelnames}")
        with _FILES.lock:
            child = self._children.get(values)
            if child is None:
                child = self._children[values] = Counter(self._name, self._documentation, self._labelnames, values)
        return child

    def inc(self, amount: float = 1.0) -> None:
        if len(self._labelvalues) != len(self._labelnames):
            raise ValueError(f"{self._name} is counted by its labels {self._labelnames}")
        if amount < 0:
            raise ValueError("a counter only goes up")
        with _FILES.lock:
            self.value += amount
            _FILES.add(self._key, amount)
