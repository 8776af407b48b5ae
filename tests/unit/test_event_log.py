"""A stream's kept events: seq numbers that go on across restarts, a file trimmed to what is kept, and a
follower that reads each event once, also across the writer's trims."""
from __future__ import annotations

from pathlib import Path

from cnetd.common.event_log import EventTail, EventWriter, last_events


def test_kept_events_are_trimmed_and_followed_once_each(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, keep=5)
    tail = EventTail(path)
    seen = []
    for number in range(1, 24):
        writer.append({"frame": number})
        if number % 3 == 0:
            seen += tail.poll()
    seen += tail.poll()
    assert [event["seq"] for event in seen] == list(range(1, 24))  # none twice, none missed, trims and all
    assert len(path.read_text().splitlines()) < 10  # at most twice what is kept
    assert [event["frame"] for event in last_events(path, 3)] == [21, 22, 23]
    restarted = EventWriter(path, keep=5)  # the program restarted: seq goes on
    assert restarted.append({"frame": 1})["seq"] == 24


def test_a_line_cut_off_is_skipped_and_a_partial_one_waits(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"seq": 1, "frame": 1}\n{"seq": 2, "fra\n{"seq": 3, "frame": 3}\n{"seq": 4')
    tail = EventTail(path, after_seq=0)
    assert [event["seq"] for event in tail.poll()] == [1, 3]
    with open(path, "a") as handle:
        handle.write(', "frame": 4}\n')
    assert [event["seq"] for event in tail.poll()] == [4]
    assert EventTail(path, after_seq=3).poll()[0]["seq"] == 4
