"""Executor of ``process`` workloads: a command with arguments, environment and working directory, run as an
unprivileged user (``workloads.user``) unless the node allows another."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from cnetd.common.errors import Invalid, Unprocessable
from cnetd.common.private_files import make_workload_dir
from ledger.records import WorkloadRecord
from workers.base import (RESTART_POLICIES, USER_SCHEMA, NodeContext, PlainProgram, ProgramSpec, choose_user,
                          config_schema, reject_unknown_fields)

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_SCHEMA = {"type": ["object", "null"], "propertyNames": {"pattern": ENV_NAME_PATTERN},
              "additionalProperties": {"type": "string"}}
_FIELDS = ("command", "args", "env", "working_dir", "restart", "user")


class ProcessExecutor(PlainProgram):
    type_name = "process"
    config_schema = config_schema({
        "command": {"type": "string", "pattern": r"\S", "description": "an executable on the node's PATH, or its path"},
        "args": {"type": "array", "items": {"type": "string"}}, "env": ENV_SCHEMA,
        "working_dir": {"type": ["string", "null"]}, "restart": {"enum": list(RESTART_POLICIES)},
        "user": USER_SCHEMA}, required=("command",))

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, _FIELDS)
        command = config.get("command")
        if not isinstance(command, str) or not command.strip():
            raise Invalid("config.command: a non-empty string is required")
        resolved = shutil.which(command)
        if resolved is None:
            hint = " (put arguments in config.args)" if " " in command.strip() else ""
            raise Unprocessable(f"config.command: {command!r} is not an executable on this node{hint}")
        if "=" in resolved:
            raise Unprocessable(f"config.command: {command!r} must not contain '='")
        args = config.get("args", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise Invalid("config.args: expected a list of strings")
        env = {} if config.get("env") is None else config["env"]
        if not isinstance(env, dict):
            raise Invalid("config.env: expected an object of NAME: value strings")
        for name, value in env.items():
            if not re.fullmatch(ENV_NAME_PATTERN, name) or not isinstance(value, str):
                raise Invalid(f"config.env: {name!r} must be a variable name with a string value")
        working_dir = config.get("working_dir")
        if working_dir is not None and not isinstance(working_dir, str):
            raise Invalid("config.working_dir: expected a path")
        if working_dir is not None and not os.path.isdir(working_dir):
            raise Unprocessable(f"config.working_dir: {working_dir!r} is not a directory on this node")
        restart = config.get("restart", "never")
        if restart not in RESTART_POLICIES:
            raise Invalid(f"config.restart: expected one of {', '.join(RESTART_POLICIES)}, got {restart!r}")
        return {"command": resolved, "args": args, "env": env, "working_dir": working_dir, "restart": restart,
                "user": choose_user(config.get("user"), node)}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        config = record.config
        user = config.get("user", node.workload_user)  # records from before users existed: the default
        cwd = config["working_dir"]
        if cwd is None:
            cwd = str(node.paths.workload_dir(record.id))
            make_workload_dir(Path(cwd), user)
        env = {**config["env"], "CNET_WORKLOAD_ID": record.id, "CNET_NODE_ID": node.node_id}
        return ProgramSpec(argv=[config["command"], *config["args"]], env=env, cwd=cwd,
                           restart_policy=config["restart"], user=user)
