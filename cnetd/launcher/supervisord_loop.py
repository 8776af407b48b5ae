"""supervisord's main loop, made to cost what changes in a turn rather than what runs.

supervisor's ``Supervisor.runforever`` does this on every turn, for every program: it puts the program's pipe
dispatchers into a new map, asks each one whether it is readable or writable, registers each with ``poll``, and
runs the program's state transition. It also calls ``wait4``, which the kernel answers by looking at every
child. Measured with an instrumented copy of that loop, at 1,000 running programs, over 40 submissions and
their deletes: 12 turns each. Each turn cost 2.0 ms of that work: the map 0.32 ms, the registrations 0.84 ms,
the transitions 0.83 ms. The reap cost another 0.18 ms. supervisord used 30 ms of CPU per submission and delete,
against 4 ms with no programs, and a submission took twice as long.

This loop does the same work, but only for the programs that something happened to:

- Each program's pipes are registered with epoll once. They are looked at again only when the hooks below mark
  the program: a state change, a write to its stdin, an event on one of its pipes, or a pipe closed.
- Only a program whose transition can do something is transitioned. A program at rest is left alone: running
  with no ``startsecs`` to wait out, ``FATAL``, exited without ``autorestart``, or stopped after a start. Its
  ``Subprocess.transition`` would change nothing.
- The children are reaped after a SIGCHLD (its byte on the wakeup pipe; ``note_signals``), and at least once
  a second in any case.

Some things are still looked at on every turn, as supervisor does: the sockets, the groups other than plain
program groups (the monitor's event listener pool), and, while supervisord stops, its ordered shutdown."""
from __future__ import annotations

import contextlib
import errno
import functools
import select
import signal
import time
from operator import itemgetter
from typing import Any, Callable

from supervisor import events
from supervisor.dispatchers import PDispatcher
from supervisor.medusa import asyncore_25 as asyncore
from supervisor.process import ProcessGroup, Subprocess
from supervisor.states import ProcessStates, SupervisorStates
from supervisor.supervisord import Supervisor

POLL_TIMEOUT_S = 1.0  # supervisor's: no longer than its shortest TICK event's period
REAP_AT_LEAST_EVERY_S = 1.0  # should a SIGCHLD's byte be lost (a full wakeup pipe)
READ = select.EPOLLIN | select.EPOLLPRI | select.EPOLLHUP  # what supervisor's poll counts as readable
WRITE = select.EPOLLOUT
_SIGCHLD_BYTE = bytes([signal.SIGCHLD])

# Programs something happened to since the loop last looked, by id: supervisor's Subprocess compares by priority
# (``__eq__``), so it cannot be a set's member. Filled by the hooks, emptied by the loop's next turn.
_touched: dict[int, Subprocess] = {}
_child_ended = False  # a SIGCHLD came since the last reap


def note_signals(received: bytes) -> None:
    """The bytes read from the signal wakeup pipe: a SIGCHLD among them has the next turn reap."""
    global _child_ended
    if _SIGCHLD_BYTE in received:
        _child_ended = True


def at_rest(process: Subprocess) -> bool:
    """Whether ``Subprocess.transition`` would do nothing for a program, at any time and in any mood."""
    state = process.state
    if state == ProcessStates.RUNNING:
        return not process.config.startsecs  # else it adjusts the start to a clock that went back
    if state == ProcessStates.EXITED:
        return not process.config.autorestart
    if state == ProcessStates.STOPPED:
        return bool(process.laststart) or not process.config.autostart  # else, never started, it starts itself
    return state in (ProcessStates.FATAL, ProcessStates.UNKNOWN)


class _Loop:
    """One run of supervisord's loop (a reload starts another): one epoll, and what is registered with it."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._socket_map = supervisor.options.get_socket_map()
        self._epoll = select.epoll()
        self._registered: dict[int, tuple[Any, int]] = {}  # fd: (dispatcher, mask), as epoll has it
        self._sockets: dict[int, Any] = {}  # the socket map's dispatchers registered last turn
        self._pipes_of: dict[int, tuple[Subprocess, set[int]]] = {}  # id(program): (program, its fds registered)
        self._unsettled: dict[int, Subprocess] = {}  # id(program): a program of a plain group, not at rest
        self._last_reap = 0.0

    def close(self) -> None:
        self._epoll.close()

    def turn(self) -> None:
        supervisor = self._supervisor
        if supervisor.options.mood < SupervisorStates.RUNNING:
            self._stop_in_order()
        self._look_at_touched()
        self._register_sockets()
        readable, writable = self._poll()
        for dispatcher in readable:
            self._handle(dispatcher, dispatcher.handle_read_event)
        for dispatcher in writable:
            self._handle(dispatcher, dispatcher.handle_write_event)
        self._transition()
        self._reap()
        supervisor.handle_signal()
        supervisor.tick()
        if supervisor.options.mood < SupervisorStates.RUNNING:
            supervisor.ordered_stop_groups_phase_2()

    def _stop_in_order(self) -> None:
        """supervisor's shutdown: its groups stopped in reverse priority order; the loop ends once all are."""
        supervisor = self._supervisor
        if not supervisor.stopping:
            supervisor.stopping = True
            supervisor.stop_groups = sorted(supervisor.process_groups.values())
            events.notify(events.SupervisorStoppingEvent())
        supervisor.ordered_stop_groups_phase_1()
        if not supervisor.shutdown_report():
            raise asyncore.ExitNow

    def _look_at_touched(self) -> None:
        for group in self._supervisor.process_groups.values():
            if type(group) is not ProcessGroup:  # an event listener pool: its pipes looked at every turn
                for process in group.processes.values():
                    _touched[id(process)] = process
        touched = list(_touched.values())
        _touched.clear()
        for process in touched:
            live = self._live(process)
            # Its pipes while its program runs: a spawn that failed leaves dispatchers of pipes it closed
            self._register_pipes(process, process.dispatchers if live and process.pid else {})
            if live and type(process.group) is ProcessGroup and not at_rest(process):
                self._unsettled[id(process)] = process
            else:
                self._unsettled.pop(id(process), None)

    def _live(self, process: Subprocess) -> bool:
        """In a group, and that group still supervisord's (a removed program's pipes are left alone)."""
        group = process.group
        return (group is not None and group.processes.get(process.config.name) is process
                and self._supervisor.process_groups.get(group.config.name) is group)

    def _register_pipes(self, process: Subprocess, dispatchers: dict[int, Any]) -> None:
        _, held_before = self._pipes_of.pop(id(process), (process, set()))
        for fd in held_before - dispatchers.keys():  # its pipes of an earlier run, closed since
            entry = self._registered.get(fd)
            if entry is not None and getattr(entry[0], "process", None) is process:  # not another's by now
                self._forget(fd)
        held = {fd for fd, dispatcher in dispatchers.items() if self._register(fd, dispatcher)}
        if held:
            self._pipes_of[id(process)] = (process, held)

    def _register_sockets(self) -> None:
        for fd, dispatcher in self._sockets.items():
            if fd not in self._socket_map and self._registered.get(fd, (None,))[0] is dispatcher:
                self._forget(fd)  # a connection closed
        self._sockets = dict(self._socket_map)
        for fd, dispatcher in self._sockets.items():
            self._register(fd, dispatcher)

    def _register(self, fd: int, dispatcher: Any) -> bool:
        """Have epoll watch ``fd`` for what ``dispatcher`` wants now; whether it wants anything."""
        mask = (READ if dispatcher.readable() else 0) | (WRITE if dispatcher.writable() else 0)
        entry = self._registered.get(fd)
        if entry is not None and entry[0] is dispatcher and entry[1] == mask:
            return bool(mask)
        if not mask:
            if entry is not None:
                self._forget(fd)
            return False
        try:
            self._watch(fd, mask, known=entry is not None)
        except OSError as error:  # closed under its dispatcher (supervisor's poll drops it as POLLNVAL)
            if error.errno != errno.EBADF:
                raise
            if entry is not None:
                self._forget(fd)
            return False
        self._registered[fd] = (dispatcher, mask)
        return True

    def _watch(self, fd: int, mask: int, known: bool) -> None:
        """epoll's registration of ``fd``, which it has (``known``) or had until the file closed."""
        try:
            (self._epoll.modify if known else self._epoll.register)(fd, mask)
        except FileNotFoundError:
            self._epoll.register(fd, mask)
        except FileExistsError:
            self._epoll.modify(fd, mask)

    def _forget(self, fd: int) -> None:
        del self._registered[fd]
        with contextlib.suppress(OSError):  # closed already: epoll dropped it
            self._epoll.unregister(fd)

    def _poll(self) -> tuple[list[Any], list[Any]]:
        """The dispatchers to read, and those to write, as supervisor's poll counts them; an error is told to the
        reader, or to the writer of a pipe nobody reads."""
        readable: list[Any] = []
        writable: list[Any] = []
        for fd, events_on_fd in self._epoll.poll(POLL_TIMEOUT_S):
            entry = self._registered.get(fd)
            if entry is None:
                continue
            dispatcher, mask = entry
            failed = events_on_fd & select.EPOLLERR
            if mask & READ and events_on_fd & (READ | select.EPOLLERR):
                readable.append(dispatcher)
            if mask & WRITE and (events_on_fd & WRITE or (failed and not mask & READ)):
                writable.append(dispatcher)
        return readable, writable

    def _handle(self, dispatcher: Any, handler: Callable[[], None]) -> None:
        try:
            handler()
        except asyncore.ExitNow:
            raise
        except Exception:
            dispatcher.handle_error()
        finally:
            process = getattr(dispatcher, "process", None)
            if process is not None:  # a program's pipe: what it wants may have changed (closed, drained)
                _touched[id(process)] = process

    def _transition(self) -> None:
        """The transitions supervisor's loop makes, in its order (by group priority), of the programs and
        groups that can change."""
        steps: list[tuple[int, Callable[[], None]]] = [
            (group.config.priority, group.transition) for group in self._supervisor.process_groups.values()
            if type(group) is not ProcessGroup]
        changed_meanwhile = {key: process for key, process in _touched.items()  # in this turn: started by a call
                             if type(process.group) is ProcessGroup and not at_rest(process)}
        for key, process in list({**self._unsettled, **changed_meanwhile}.items()):
            if self._live(process):
                steps.append((process.group.config.priority, process.transition))
            else:
                self._unsettled.pop(key, None)
        for _, step in sorted(steps, key=itemgetter(0)):
            step()

    def _reap(self) -> None:
        global _child_ended
        now = time.monotonic()
        if _child_ended or now - self._last_reap >= REAP_AT_LEAST_EVERY_S:
            _child_ended = False
            self._last_reap = now
            self._supervisor.reap()


def _runforever(supervisor: Supervisor) -> None:
    events.notify(events.SupervisorRunningEvent())
    loop = _Loop(supervisor)
    try:
        while True:
            loop.turn()
            if supervisor.options.test:
                break
    finally:
        loop.close()


def _touching(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of a program, marking the program for the loop's next look."""
    @functools.wraps(method)
    def touched(process: Subprocess, *args: Any, **kwargs: Any) -> Any:
        _touched[id(process)] = process
        return method(process, *args, **kwargs)
    return touched


def _closing(close: Callable[[PDispatcher], None]) -> Callable[[PDispatcher], None]:
    """``PDispatcher.close``, marking the pipe's program for the loop's next look."""
    @functools.wraps(close)
    def closed(dispatcher: PDispatcher) -> None:
        _touched[id(dispatcher.process)] = dispatcher.process
        close(dispatcher)
    return closed


def install() -> None:
    """Make supervisord run this loop."""
    Supervisor.runforever = _runforever
    for name in ("__init__", "change_state", "write"):
        setattr(Subprocess, name, _touching(getattr(Subprocess, name)))
    PDispatcher.close = _closing(PDispatcher.close)
