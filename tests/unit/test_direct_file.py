"""DirectFile: what is written reads back byte for byte at every size around its buffer and block edges, the
file is written around the page cache where the filesystem allows it, and through it where it refuses."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cnetd.common.direct_file import DirectFile, new_buffer
from tests.support.disks import small_disk

BUFFER = 64 * 1024
SIZES = (0, 1, 4095, 4096, 4097, BUFFER - 1, BUFFER, BUFFER + 1, 3 * BUFFER + 4096 * 5 + 17)


@pytest.mark.parametrize("size", SIZES)
def test_what_is_written_in_uneven_pieces_reads_back_whole(tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    with new_buffer(BUFFER) as buffer, DirectFile(tmp_path / "f", buffer) as written:
        assert written.direct  # this machine's filesystems take O_DIRECT
        for start in range(0, size, 10_007):  # pieces that straddle every block and buffer edge
            written.write(content[start:start + 10_007])
        written.finish()
        assert not written.direct  # the tail went through the page cache
    assert (tmp_path / "f").read_bytes() == content


def test_one_buffer_serves_files_one_after_another(tmp_path: Path) -> None:
    first, second = os.urandom(BUFFER + 5), os.urandom(7)
    with new_buffer(BUFFER) as buffer:
        for name, content in (("a", first), ("b", second)):
            with DirectFile(tmp_path / name, buffer) as written:
                written.write(content)
                written.finish()
    assert (tmp_path / "a").read_bytes() == first and (tmp_path / "b").read_bytes() == second


def test_never_over_or_through_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "there").write_bytes(b"kept")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with new_buffer(BUFFER) as buffer:
        for name in ("there", "link"):
            with pytest.raises(FileExistsError):
                DirectFile(tmp_path / name, buffer)
    assert (tmp_path / "there").read_bytes() == b"kept" and not (tmp_path / "elsewhere").exists()


def test_a_filesystem_that_refuses_o_direct_gets_the_same_bytes_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def refusing_direct(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_DIRECT:  # as some filesystems answer (FUSE ones, for instance)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refusing_direct)
    content = os.urandom(2 * BUFFER + 3)
    with new_buffer(BUFFER) as buffer, DirectFile(tmp_path / "f", buffer) as written:
        assert not written.direct
        written.write(content)
        written.finish()
    assert (tmp_path / "f").read_bytes() == content


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs")
def test_a_disk_that_fills_up_mid_buffer_raises_enospc(tmp_path: Path) -> None:
    """A disk with half a buffer left: the O_DIRECT write comes back short, the rest is tried through the page
    cache (a short count need not be a whole block), which says ENOSPC, as a buffered write would: nothing
    is silently dropped, and the error names the full disk rather than a misaligned write."""
    with small_disk(tmp_path / "disk", str(4 * BUFFER + BUFFER // 2)) as disk:
        with new_buffer(BUFFER) as buffer, DirectFile(disk / "f", buffer) as written:
            with pytest.raises(OSError) as raised:
                written.write(os.urandom(8 * BUFFER))
            assert not written.direct  # the short write was taken up through the page cache
        assert raised.value.errno == errno.ENOSPC
