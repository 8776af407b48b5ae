"""supervisor_twiddler's add and removal of a program in a group, at the cost of that program rather than of every
program of its group.

twiddler's ``addProgramToGroup`` compares the new program's name with every config of the group, and its
``removeProcessFromGroup`` transitions every process of the group (``ProcessGroup.transition``) before it removes
one that it has found stopped, then finds that one's config in a loop over the group's. A stopped program is at
rest: its transition changes nothing (``supervisord_loop``), and no other program's is this request's business;
supervisord's loop transitions the programs that something happened to. With 2,000 workloads running, a py-spy
profile of supervisord under submissions and deletes found the removal's transitions in 26 % of its busy samples
and its loop in another 7 %. Beside 2,000 programs at rest, an add took 0.83 ms and a removal 1.67 with twiddler's,
0.55 and 0.53 with these.

Here the same checks give the same faults. A name is looked up in the group's processes, which hold a process for
each of its configs by name (twiddler adds and removes the two together). The removed program alone is
transitioned, and its config is found by a scan in C (``map`` of the names, ``list.index``).
"""
from __future__ import annotations

import operator
from typing import Any

from supervisor.states import STOPPED_STATES
from supervisor.xmlrpc import Faults, RPCError
from supervisor_twiddler.rpcinterface import TwiddlerNamespaceRPCInterface

_name = operator.attrgetter("name")


def _add_program_to_group(self: TwiddlerNamespaceRPCInterface, group_name: str, program_name: str,
                          program_options: dict[str, Any]) -> bool:
    """twiddler's ``addProgramToGroup`` (its checks and faults): the processes of a program configured by
    ``program_options``, as a section of supervisord.conf would, join the group."""
    self._update("addProgramToGroup")
    group = self._getProcessGroup(group_name)
    section = f"program:{program_name}"
    try:
        configs = self.supervisord.options.processes_from_section(
            self._makeConfigParser(section, program_options), section, group_name)
    except ValueError as error:
        raise RPCError(Faults.INCORRECT_PARAMETERS, error) from None
    taken = next((config.name for config in configs if config.name in group.processes), None)
    if taken is not None:
        raise RPCError(Faults.BAD_NAME, taken)
    group.config.process_configs.extend(configs)
    for config in configs:
        config.create_autochildlogs()  # the group's own hook, which made them for its first configs, is past
        group.processes[config.name] = config.make_process(group)
    return True


def _remove_process_from_group(self: TwiddlerNamespaceRPCInterface, group_name: str, process_name: str) -> bool:
    """twiddler's ``removeProcessFromGroup`` (its checks and faults): a process that is not running leaves its
    group."""
    self._update("removeProcessFromGroup")
    group = self._getProcessGroup(group_name)
    process = group.processes.get(process_name)
    if process is None:
        raise RPCError(Faults.BAD_NAME, process_name)
    if process.pid or process.state not in STOPPED_STATES:
        raise RPCError(Faults.STILL_RUNNING, process_name)
    process.transition()
    configs = group.config.process_configs
    names = list(map(_name, configs))
    if process_name in names:  # it is, unless something other than twiddler changed the group
        del configs[names.index(process_name)]
    del group.processes[process_name]
    return True


def install() -> None:
    """Make supervisord's twiddler namespace add and remove a program this way."""
    TwiddlerNamespaceRPCInterface.addProgramToGroup = _add_program_to_group
    TwiddlerNamespaceRPCInterface.removeProcessFromGroup = _remove_process_from_group
