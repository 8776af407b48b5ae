"""``python -m cnetd.launcher.supervisord``: supervisor's own supervisord, started without OpenSSL's TLS library,
and woken by the signals it receives.

supervisord serves XML-RPC on the node's unix socket and never speaks TLS, but its XML-RPC module imports
``http.client``, which loads ``ssl``: 0.7 MiB of an idle node (``bench/idle_memory.py``), here as in the
node's daemons (``cnetd.common.http_without_tls``).

supervisord notices that a program ended when its loop next turns: the loop polls its sockets and the
programs' output pipes for up to a second, and a SIGCHLD does not end that wait (Python retries an
interrupted poll). A program's output pipe reads as closed a moment before the program can be reaped, so the
turn that the close brings often finds nothing to reap, and the exit waited for the next second: a node stop
took 1.3 or 2.3 s where 0.3 sufficed. Here every signal also writes to a pipe in the poll
(``signal.set_wakeup_fd``): the turn comes as the program ends. And the events of a program reaped in a turn
(its EXITED, which the monitor settles) reach the event listeners in the next turn; a reap writes to the same
pipe, so that turn follows at once: a process workload's end took its record 1.03 s beyond the run (the
median of 8; 0.03 with the wakeups alone, three of the eight still 1.03), now 0.02. Not in a node's first
second: supervisord hands events only to a listener past its startsecs (the monitor's is 1 s), so a workload
that ends then is recorded once that second is over. Its programs start by ``subprocess`` rather than by a fork
of supervisord (``cnetd.launcher.program_spawn``).

An XML-RPC answer leaves a slice per turn of the loop, and each turn polls every program's pipes and looks at
every program. supervisor cut medusa's 64 KiB slice to 4 KiB ("to spew tail -f output faster (speculative)"):
the monitor's ``getAllProcessInfo`` every 5 s (1.3 KB a program) then took 320 turns with 1,000 programs, work
that grew as their square, and supervisord used 14 % of a core on an idle node (1.4 % now). The slice is
medusa's 64 KiB again, what supervisor's globbing producer hands over a turn: 21 turns for that answer.
Its loop is ``cnetd.launcher.supervisord_loop``: a turn costs what changed in it, not every program. Its add and
removal of a program (twiddler's) cost that program alone (``cnetd.launcher.group_programs``). Everything else is
supervisord's ``main``."""
from __future__ import annotations

import os
import signal

from cnetd.common.http_without_tls import load_http_client_without_tls

load_http_client_without_tls()

from supervisor import http  # noqa: E402
from supervisor.medusa import asyncore_25 as asyncore  # noqa: E402
from supervisor.options import ServerOptions  # noqa: E402
from supervisor.supervisord import main  # noqa: E402

from cnetd.launcher import group_programs, program_spawn, supervisord_loop  # noqa: E402

ANSWER_SLICE_BYTES = 1 << 16  # medusa's own, and what deferring_globbing_producer gathers for a turn


class SignalWakeup:
    """A pipe that Python writes each signal's number to, in supervisord's poll as a dispatcher of its socket
    map (the interface its loop calls: readable, writable, handle_read_event, handle_error)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            while received := os.read(self.read_end, 4096):
                supervisord_loop.note_signals(received)
        except BlockingIOError:  # drained
            pass

    def handle_error(self) -> None:
        pass

    def wake(self) -> None:
        try:
            os.write(self.write_end, b"\0")
        except BlockingIOError:  # full: the loop will turn anyway
            pass


_set_handlers = ServerOptions.setsignals
_waitpid = ServerOptions.waitpid
_wakeup: SignalWakeup | None = None  # the pipe in the poll of supervisord's current start


def _setsignals_with_wakeup(options: ServerOptions) -> None:
    """supervisord sets its handlers on each (re)start. A restart (``supervisorctl reload``) has closed every
    descriptor from 5 up, the last start's pipe among them, and may have given its numbers to new files or
    sockets: its entry leaves the socket map only if it is still there under that number."""
    global _wakeup
    _set_handlers(options)
    if _wakeup is not None and asyncore.socket_map.get(_wakeup.read_end) is _wakeup:
        del asyncore.socket_map[_wakeup.read_end]
    _wakeup = SignalWakeup()
    asyncore.socket_map[_wakeup.read_end] = _wakeup
    signal.set_wakeup_fd(_wakeup.write_end)


def _waitpid_turning_again(options: ServerOptions) -> tuple[int | None, int | None]:
    """supervisord's ``waitpid``; a program reaped makes its loop turn again at once."""
    pid, status = _waitpid(options)
    if pid and _wakeup is not None:
        _wakeup.wake()
    return pid, status


http.deferring_http_channel.ac_out_buffer_size = ANSWER_SLICE_BYTES
ServerOptions.setsignals = _setsignals_with_wakeup
ServerOptions.waitpid = _waitpid_turning_again
program_spawn.install()
group_programs.install()
supervisord_loop.install()

if __name__ == "__main__":
    main()
