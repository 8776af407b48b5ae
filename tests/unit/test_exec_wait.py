"""``not_yet_executed``: a stop waits while a program's process is still its parent's forked copy (before its
exec), where a signal would land in supervisord's own handler."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from cnetd.core.supervisor_rpc import not_yet_executed


def test_a_forked_copy_has_not_executed_yet() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy waits, as supervisord's child does while it closes descriptors
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    try:
        os.close(read_end)
        assert not_yet_executed(pid)
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


def test_a_program_that_executed_its_command_has() -> None:
    program = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert not not_yet_executed(program.pid)  # the same interpreter, another command line
    finally:
        program.send_signal(signal.SIGKILL)
        program.wait()


def test_a_process_that_is_gone_has_nothing_to_wait_for() -> None:
    program = subprocess.Popen(["true"])
    program.wait()
    assert not not_yet_executed(program.pid)
