"""A short chaos run (``tools/chaos.py``): four nodes on test hosts, two rounds of mixed load with random faults
from a fixed seed, the invariants checked after each. Its control: an orphan planted before the last round's check
is the one violation reported."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.chaos import main


def test_a_short_chaos_run_holds_and_reports_a_planted_orphan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--seed", "7", "--rounds", "2", "--round-s", "15", "--history", str(tmp_path / "history.jsonl"),
                 "--plant-orphan"])
    output = capsys.readouterr().out
    lines = output.strip().splitlines()
    assert re.fullmatch(r"chaos: 2 rounds, [1-9]\d* faults, [1-9]\d* requests, 1 violations \(seed 7\)", lines[-1]), output
    violations = [line for line in lines if "VIOLATION" in line]
    assert len(violations) == 1 and "chaos-planted-orphan" in violations[0] and "round 2" in violations[0], output
    assert code == 1
    assert "round 1: invariants: all hold" in output
    assert (tmp_path / "history.jsonl").read_text().count('"kind": "fault"') >= 2
