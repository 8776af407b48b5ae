"""``ledger.stored_json.ParsedRecords``: what a read of every record keeps, and when the next one reads nothing."""
from __future__ import annotations

from typing import Iterator

import orjson
import pytest

from ledger.stored_json import ParsedRecords

STORED = [(b"a", orjson.dumps({"id": "a", "n": 1})), (b"b", orjson.dumps({"id": "b", "n": 2}))]


def unread() -> Iterator[tuple[bytes, bytes]]:
    raise AssertionError("the items were read")
    yield  # a generator: it fails when it is first read, not when it is made


def test_a_read_of_every_record_at_the_version_of_the_last_takes_its_objects_and_reads_nothing() -> None:
    parsed = ParsedRecords()
    first = list(parsed.parsed(iter(STORED), every_record=True, version=7))
    assert [data for data, _ in first] == [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    again = list(parsed.parsed(unread(), every_record=True, version=7))
    assert [(id(data), raw) for data, raw in again] == [(id(data), raw) for data, raw in first]
    with pytest.raises(AssertionError, match="read"):  # control: at another version, the items are read
        list(parsed.parsed(unread(), every_record=True, version=8))


def test_a_read_of_some_records_gives_what_is_stored_and_the_next_read_of_every_record_drops_the_deleted() -> None:
    parsed = ParsedRecords()
    list(parsed.parsed(iter(STORED), every_record=True, version=7))
    changed = [(b"a", orjson.dumps({"id": "a", "n": 3}))]
    assert [data for data, _ in parsed.parsed(iter(changed), every_record=False, version=8)] == [{"id": "a", "n": 3}]
    assert [data["n"] for data, _ in parsed.parsed(iter(STORED[1:]), every_record=True, version=9)] == [2]
    assert [data["n"] for data, _ in parsed.parsed(unread(), every_record=True, version=9)] == [2]  # "a" deleted
