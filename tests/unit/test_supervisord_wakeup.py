"""supervisord as cnetd runs it (``cnetd.launcher.supervisord``): a child's end, and a reap, put a byte in a pipe
that its loop polls, so the loop turns as a program ends rather than at its next one-second poll timeout.

Run in a fresh interpreter: supervisord's signal handlers replace the test process's own. In the same script,
supervisor's stock ``setsignals`` and ``waitpid`` are the control: with them nothing reaches the pipe."""
from __future__ import annotations

import json

from tests.support.fresh_python import fresh_python

SCRIPT = """
import json, os, select, signal
from cnetd.launcher import supervisord as launcher
from supervisor.medusa import asyncore_25 as asyncore
from supervisor.options import ServerOptions

options = ServerOptions()
options.setsignals()
options.setsignals()  # supervisord's restart sets them again: one wakeup pipe stays in the poll, the new one
wakeups = [each for each in asyncore.socket_map.values() if isinstance(each, launcher.SignalWakeup)]

def readable(wait_s):
    return bool(select.select([launcher._wakeup.read_end], [], [], wait_s)[0])

def child_ends(setsignals, waitpid):
    setsignals(options)
    if setsignals is launcher._set_handlers:
        signal.set_wakeup_fd(-1)
    wakeup = launcher._wakeup  # the pipe in the poll now
    wakeup.handle_read_event()
    child = os.fork()
    if child == 0:
        os._exit(0)
    on_its_end = readable(1.0)
    wakeup.handle_read_event()
    while True:
        reaped, _ = waitpid(options)
        if reaped == child:
            return {"on_its_end": on_its_end, "on_its_reap": readable(0)}

print(json.dumps({"pipes_in_poll": len(wakeups), "stale_pipe_in_poll": len(asyncore.socket_map) != 1,
                  "cnetd": child_ends(ServerOptions.setsignals, ServerOptions.waitpid),
                  "stock": child_ends(launcher._set_handlers, launcher._waitpid)}))
"""


def test_a_childs_end_and_its_reap_wake_supervisords_loop_and_stock_supervisord_does_not() -> None:
    ran = fresh_python(SCRIPT)
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["pipes_in_poll"] == 1 and not seen["stale_pipe_in_poll"]
    assert seen["cnetd"] == {"on_its_end": True, "on_its_reap": True}
    assert seen["stock"] == {"on_its_end": False, "on_its_reap": False}  # the control
