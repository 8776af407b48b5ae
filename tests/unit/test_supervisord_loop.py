"""cnetd's supervisord loop (``cnetd.launcher.supervisord_loop``) leaves a program at rest alone, and runs programs
as supervisor's own loop does.

- Leaving a program at rest alone is only right if its transition would change nothing. For every state,
  ``startsecs``, ``autorestart``, ``autostart``, start time and supervisord mood, a program the loop counts as at
  rest is transitioned here, and nothing of it changes. The control: the same transition changes a program that is
  not at rest (a start that is over, an exit to restart).
- A real supervisord, stock (the control) and cnetd's, keeps 60 sleeping programs at rest. It then runs 30 programs
  one after another, each started as the one before ends, so that each one's pipes take the numbers the last
  one's had. Each one writes more than a pipe holds, to stdout and to stderr, and exits. Each one's output
  must reach its own two logs, whole, and each one's exit must be seen."""
from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Iterator

import pytest
from supervisor.process import Subprocess
from supervisor.states import ProcessStates, SupervisorStates
from supervisor.tests.base import DummyOptions, DummyPConfig

from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.core.supervisor_rpc import Supervisor
from cnetd.launcher.supervisor_conf import rpc_interface
from cnetd.launcher.supervisord_loop import at_rest
from tests.support.supervisord import CNETD, STOCK, running_supervisord, write_config

AT_REST_ALONGSIDE = 60
ONE_AFTER_ANOTHER = 30
OUTPUT_BYTES = 200_000  # over a pipe's 64 KiB: supervisord must keep reading while the program writes
WAIT_S = 30.0  # a hang, not a speed


def program(state: int, startsecs: int, autorestart: bool, autostart: bool, started: bool, mood: int) -> Subprocess:
    options = DummyOptions()
    options.mood = mood
    process = Subprocess(DummyPConfig(options, "p", "/bin/true", startsecs=startsecs, autorestart=autorestart,
                                      autostart=autostart, startretries=3))
    process.state, process.pid = state, 4242 if state in (ProcessStates.RUNNING, ProcessStates.STOPPING) else 0
    process.laststart = time.time() - 5 if started else 0
    process.exitstatus = 1  # an exit autorestart counts as unexpected
    return process


def test_a_program_at_rest_has_nothing_to_transition() -> None:
    resting = changed_by_transition = 0
    for state, startsecs, autorestart, autostart, started, mood in itertools.product(
            ProcessStates.__dict__.values(), (0, 10), (False, True), (False, True), (False, True),
            (SupervisorStates.RUNNING, SupervisorStates.RESTARTING, SupervisorStates.SHUTDOWN)):
        if not isinstance(state, int):
            continue
        process = program(state, startsecs, autorestart, autostart, started, mood)
        before = dict(vars(process))
        process.transition()
        changed = dict(vars(process)) != before
        if at_rest(program(state, startsecs, autorestart, autostart, started, mood)):
            resting += 1
            assert not changed, (state, startsecs, autorestart, autostart, started, mood)
        changed_by_transition += changed
    assert resting and changed_by_transition  # both kinds were met: the check above could fail


@pytest.fixture(params=[STOCK, CNETD])
def supervisord(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Supervisor, Path]]:
    config = write_config(tmp_path, "", f"{rpc_interface('twiddler')}[group:{WORKLOAD_GROUP}]\nprograms=\n")
    with running_supervisord(request.param, config) as running:
        yield running.client, tmp_path


def options(command: str, logs: Path, name: str) -> dict[str, str]:
    return {"command": command, "autostart": "false", "autorestart": "false", "startsecs": "0",
            "stdout_logfile": str(logs / f"{name}.out"), "stderr_logfile": str(logs / f"{name}.err"),
            "stdout_logfile_maxbytes": "0", "stderr_logfile_maxbytes": "0"}


def test_programs_one_after_another_each_log_their_whole_output_and_end(
        supervisord: tuple[Supervisor, Path]) -> None:
    client, logs = supervisord
    for index in range(AT_REST_ALONGSIDE):
        client.add_and_start(f"rest{index}", options("/bin/sleep 600", logs, f"rest{index}"))
    for index in range(ONE_AFTER_ANOTHER):
        name = f"run{index}"
        script = (f"echo start-{index}; head -c {OUTPUT_BYTES} /dev/zero | tr '\\\\0' o; "
                  f"head -c {OUTPUT_BYTES} /dev/zero | tr '\\\\0' e >&2; echo; echo end-{index}")
        client.add_and_start(name, options(f"/bin/sh -c \"{script}\"", logs, name))
        deadline = time.monotonic() + WAIT_S
        while (info := client.info(f"{WORKLOAD_GROUP}:{name}"))["statename"] != "EXITED":
            assert time.monotonic() < deadline, f"{name} is {info['statename']}: its end was not seen"
            time.sleep(0.01)
        assert info["exitstatus"] == 0
        client.remove(f"{WORKLOAD_GROUP}:{name}")
        out, err = (logs / f"{name}.out").read_text(), (logs / f"{name}.err").read_text()
        assert out == f"start-{index}\n{'o' * OUTPUT_BYTES}\nend-{index}\n", f"{name}'s stdout: {out[:80]!r}…"
        assert err == "e" * OUTPUT_BYTES, f"{name}'s stderr: {err[:80]!r}…"
    assert all(info["statename"] == "RUNNING" for info in client.workload_infos().values())
