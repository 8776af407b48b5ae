"""A workload's log files by name, as supervisord's rotation leaves them (a delete removes exactly these)."""
from __future__ import annotations

from pathlib import Path

from supervisor import loggers

from cnetd.core.supervisor_rpc import LOG_BACKUPS, rotated_log_files


def test_the_names_are_those_supervisords_rotation_writes(tmp_path: Path) -> None:
    log = tmp_path / "wl-x.stdout.log"
    logger = loggers.getLogger(loggers.LevelsByName.INFO)
    loggers.handle_file(logger, str(log), "%(message)s", rotating=True, maxbytes=100, backups=LOG_BACKUPS)
    for _ in range(50):
        logger.info("x" * 40)
    logger.close()
    assert sorted(tmp_path.iterdir()) == sorted(rotated_log_files(log))
