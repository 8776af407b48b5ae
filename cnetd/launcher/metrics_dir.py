"""The node's multiprocess metric files kept in memory: ``<runtime dir>/metrics`` is a link to a private
directory on /dev/shm, made afresh at each start (a plain directory where there is no /dev/shm to use).

Each node process maps its metric files (prometheus_client's ``mmap_dict``, ``cnetd.common.metric_files``) and
writes through the mapping; a file is grown sparse, so a page first written once its filesystem is full raises
SIGBUS, which kills the process. With the files on the node's disk, a full disk put the scheduler and the
API's workers into a crash loop (``terminated by SIGBUS``, each restart a new file). The files only live as
long as the node's run, as prometheus_client's multiprocess mode asks of its directory.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SHARED_MEMORY = Path("/dev/shm")
PREFIX = "cnet-metrics-"


def fresh_metrics_dir(link: Path) -> None:
    """An empty metrics directory for a starting node at ``link`` (whose parent exists): the last run's
    removed, a new one made (mode 0700, a name no one can guess) on shared memory."""
    remove_metrics_dir(link)
    try:
        target = tempfile.mkdtemp(prefix=PREFIX, dir=SHARED_MEMORY)
    except OSError:  # no /dev/shm here, or not writable: on the node's disk, as it was
        link.mkdir()
        return
    link.symlink_to(target, target_is_directory=True)


def remove_metrics_dir(link: Path) -> None:
    """The metrics directory at ``link`` and, when it is a link that ``fresh_metrics_dir`` made, its target."""
    if link.is_symlink():
        target = Path(os.readlink(link))
        if target.parent == SHARED_MEMORY and target.name.startswith(PREFIX):
            shutil.rmtree(target, ignore_errors=True)
        link.unlink()
    else:
        shutil.rmtree(link, ignore_errors=True)
