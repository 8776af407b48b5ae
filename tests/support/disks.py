"""Test helper: a small tmpfs mounted over a directory, and a file that takes all of its free space (the full
disk a chaos round makes). Mounting needs root, as the tests that use it run."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def small_disk(path: Path, size: str, mode: str = "0755") -> Iterator[Path]:
    """``path`` (made if missing) as a tmpfs of ``size`` (``mount -o size=``) while inside."""
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "cnet-small-disk", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """A file taking all of ``disk``'s free space: removing it gives the space back."""
    filler = disk / "filler"
    free = os.statvfs(disk)
    subprocess.run(["fallocate", "-l", str(free.f_bavail * free.f_frsize), str(filler)], check=True)
    return filler
