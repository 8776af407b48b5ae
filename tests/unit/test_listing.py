"""Listing pages (v2 tokens, v1 markers) and key safety as pure functions."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from gateway.etag_warmer import EtagWarmer
from gateway.etags import XATTR, ETags, record_md5, set_md5_attribute, version_of
from gateway.keys import NotAFile, UnsafeKey, open_inside, safe_relative
from gateway.listing import BadToken, ListingIndex, ObjectInfo, decode_token, encode_token, list_page, walk

KEYS = ["a/1", "a/2", "a/b/3", "a/b/4", "a/c/5", "b", "c/6"]
OBJECTS = [ObjectInfo(key, 1, 0.0) for key in KEYS]


def all_pages(**options) -> list[tuple[list[str], list[str]]]:
    """Page by v2 continuation tokens (what the gateway encodes of each page's last entry)."""
    pages, token = [], None
    while True:
        after, after_is_prefix = decode_token(token) if token else ("", False)
        page = list_page(OBJECTS, after=after, after_is_prefix=after_is_prefix, **options)
        pages.append(([info.key for info in page.contents], page.common_prefixes))
        if not page.next_after:
            return pages
        token = encode_token(*page.next_after)


def v1_pages(delimiter: str = "", **options) -> list[tuple[list[str], list[str]]]:
    """Page as a ListObjects v1 client does: the next marker is the last key or common prefix returned."""
    pages, marker = [], ""
    while True:
        page = list_page(OBJECTS, delimiter=delimiter, after=marker,
                         after_is_prefix=bool(delimiter) and marker.endswith(delimiter), **options)
        pages.append(([info.key for info in page.contents], page.common_prefixes))
        if not page.next_after:
            return pages
        marker = page.next_after[0]


def test_pages_cover_everything_once() -> None:
    pages = all_pages(max_keys=3)
    assert [key for keys, _ in pages for key in keys] == KEYS and len(pages) == 3


def test_delimiter_groups_and_pages_across_common_prefixes() -> None:
    assert all_pages(prefix="a/", delimiter="/", max_keys=2) == [(["a/1", "a/2"], []), ([], ["a/b/", "a/c/"])]
    assert all_pages(delimiter="/", max_keys=1) == [([], ["a/"]), (["b"], []), ([], ["c/"])]


def test_v1_markers_page_like_tokens() -> None:
    assert v1_pages(max_keys=3) == all_pages(max_keys=3)
    assert v1_pages(delimiter="/", max_keys=1) == [([], ["a/"]), (["b"], []), ([], ["c/"])]  # past a/ whole


def test_start_after_and_bad_tokens() -> None:
    assert [info.key for info in list_page(OBJECTS, after="a/b/4").contents] == ["a/c/5", "b", "c/6"]
    with pytest.raises(BadToken):
        decode_token("not-a-token")


def test_walk_skips_symlinks_and_staging(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    (tmp_path / ".uploading-123").mkdir()
    (tmp_path / ".uploading-123" / "partial").write_text("p")
    (tmp_path / "link").symlink_to("/etc")
    assert [info.key for info in walk(tmp_path)] == ["d/x"]


def aged(*directories) -> None:
    """Give directories an mtime well in the past (and a new one each call), as if changed long ago."""
    aged.calls = getattr(aged, "calls", 0) + 1
    for directory in directories:
        os.utime(directory, (1_000_000 + aged.calls, 1_000_000 + aged.calls))


def test_the_index_walks_again_only_when_a_directory_changed(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    index = ListingIndex(tmp_path)
    assert [info.key for info in index.objects()] == ["d/x"]
    racy = index.objects()
    assert index.objects() is not racy  # changed just now: walked each time until it has settled
    aged(tmp_path, tmp_path / "d")
    first = index.objects()
    assert [info.key for info in first] == ["d/x"] and index.objects() is first  # unchanged: not walked again
    (tmp_path / "d" / "y").write_text("y")  # in a subdirectory: its mtime moves
    assert [info.key for info in index.objects()] == ["d/x", "d/y"]
    os.rename(tmp_path / "d" / "x", tmp_path / "z")
    assert [info.key for info in index.objects()] == ["d/y", "z"]
    aged(tmp_path, tmp_path / "d")
    listed = index.objects()[0]
    (tmp_path / "d" / "y").write_text("rewritten in place")  # no directory moves: the page's own stat shows it
    assert index.objects()[0] is listed and index.current(listed).size == len("rewritten in place")
    (tmp_path / "d" / "y").unlink()
    assert index.current(listed) is None


@pytest.mark.parametrize("name", ["", "/abs", "../x", "a/../b", "a/./b", "a//b", "a\\b", "nul\x00"])
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafeKey):
        safe_relative(name)


def read_inside(root, name: str) -> bytes:
    descriptor, stat = open_inside(root, name)
    with os.fdopen(descriptor, "rb") as handle:
        assert os.fstat(handle.fileno()).st_ino == stat.st_ino
        return handle.read()


def test_no_link_is_followed_and_only_regular_files_open(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"SECRET")
    root = tmp_path / "root"
    (root / "fine").mkdir(parents=True)
    (root / "fine" / "name.txt").write_bytes(b"inside")
    (root / "out").symlink_to(outside)
    (root / "fine" / "link").symlink_to(outside / "secret")
    (root / "inner").symlink_to(root / "fine")  # even a link that stays inside
    os.mkfifo(root / "pipe")
    for name in ("out/secret", "fine/link", "inner/name.txt", "pipe", "fine", "missing", "fine/missing/x"):
        with pytest.raises(NotAFile):
            open_inside(root, name)
    with pytest.raises(UnsafeKey):
        open_inside(root, "../outside/secret")
    assert read_inside(root, "fine/name.txt") == b"inside"  # control


def test_the_etag_warmer_hashes_each_object_before_any_request_and_again_after_a_change(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    for name, body in (("a.bin", b"a" * 5000), ("sub/b.bin", b"b" * 7)):
        (tmp_path / name).write_bytes(body)
    etags, index = ETags(), ListingIndex(tmp_path)
    known = lambda name: etags.known(version_of(os.stat(tmp_path / name)))  # noqa: E731
    assert known("a.bin") is None and known("sub/b.bin") is None  # the control: nothing hashed yet
    warmer = EtagWarmer(tmp_path, etags, index)
    assert warmer.warm() == 2
    assert known("a.bin") == f'"{hashlib.md5(b"a" * 5000).hexdigest()}"' and known("sub/b.bin")
    time.sleep(0.01)
    (tmp_path / "sub" / "c.bin").write_bytes(b"c")
    assert warmer.warm() == 1 and known("sub/c.bin") == f'"{hashlib.md5(b"c").hexdigest()}"'


def test_a_recorded_md5_is_not_used_once_the_file_is_rewritten_in_place(tmp_path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"first")
    descriptor = os.open(path, os.O_RDWR)
    try:
        # not the content's: shows the attribute is what is read
        set_md5_attribute(descriptor, "0" * 32, os.fstat(descriptor))
        assert ETags().of(descriptor, os.fstat(descriptor)) == f'"{"0" * 32}"'  # the control
        time.sleep(0.01)
        os.pwrite(descriptor, b"other", 0)  # in place: the attributes stay
        assert ETags().of(descriptor, os.fstat(descriptor)) == f'"{hashlib.md5(b"other").hexdigest()}"'
    finally:
        os.close(descriptor)


def test_an_uploads_md5_is_right_before_it_is_recorded_and_read_from_its_attribute_after(tmp_path) -> None:
    """An upload's MD5 is recorded once the upload is answered: a GET before that computes it, one after reads
    it, and a file deleted before its turn comes is passed over."""
    path, content = tmp_path / "blob.bin", os.urandom((3 << 20) + 5)
    path.write_bytes(content)
    expected = hashlib.md5(content).hexdigest()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert XATTR not in os.listxattr(path)
        assert ETags().of(descriptor, os.fstat(descriptor)) == f'"{expected}"'  # computed: nothing recorded yet
        record_md5(path)
        assert os.getxattr(path, XATTR).decode() == expected
        # the control: what is recorded is what a later GET answers
        set_md5_attribute(descriptor, "0" * 32, os.fstat(descriptor))
        assert ETags().of(descriptor, os.fstat(descriptor)) == f'"{"0" * 32}"'
    finally:
        os.close(descriptor)
    record_md5(tmp_path / "deleted.bin")
    assert not (tmp_path / "deleted.bin").exists()
