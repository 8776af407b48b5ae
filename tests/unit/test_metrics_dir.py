"""The node's metric files' directory in memory: a fresh one per start, the last run's gone with it."""
from __future__ import annotations

import stat
from pathlib import Path

from cnetd.launcher.metrics_dir import PREFIX, SHARED_MEMORY, fresh_metrics_dir, remove_metrics_dir


def test_each_start_links_a_new_private_directory_in_memory_and_removes_the_last(tmp_path: Path) -> None:
    link = tmp_path / "metrics"
    fresh_metrics_dir(link)
    first = link.resolve()
    assert first.parent == SHARED_MEMORY and first.name.startswith(PREFIX)
    assert stat.S_IMODE(first.stat().st_mode) == 0o700
    (link / "counter_1.db").write_bytes(b"\0" * 8)
    fresh_metrics_dir(link)
    assert not first.exists() and list(link.iterdir()) == []
    second = link.resolve()
    remove_metrics_dir(link)
    assert not second.exists() and not link.is_symlink()


def test_a_plain_directory_from_an_earlier_version_is_replaced(tmp_path: Path) -> None:
    link = tmp_path / "metrics"
    link.mkdir()
    (link / "counter_1.db").write_bytes(b"\0" * 8)
    fresh_metrics_dir(link)
    assert link.is_symlink() and list(link.iterdir()) == []
    remove_metrics_dir(link)


def test_a_link_elsewhere_is_removed_but_not_followed(tmp_path: Path) -> None:
    """Only a directory the launcher made is removed with its link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "metrics"
    link.symlink_to(elsewhere)
    remove_metrics_dir(link)
    assert elsewhere.is_dir() and not link.exists()
