"""Renders a node's supervisord.conf: the node processes, the monitor event listener and the workload group."""
from __future__ import annotations

import shlex

from cnetd.core.config import NodeConfig
from cnetd.common.metric_files import MULTIPROCESS_ENV
from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.core.supervisor_rpc import DIE_WITH_SUPERVISORD, SETTLE_ALL_EVENT, SETTLING_EVENTS, escape

# Lower priority starts first and stops last: workloads (default 999) stop before the node processes.
# api-standby runs only during a reload: it serves while api is replaced (cnetd.launcher.reload).
NODE_PROGRAMS = ("register", "scheduler", "api")
API, API_STANDBY, MONITOR = "api", "api-standby", "monitor"
_PRIORITIES = {"register": 10, "scheduler": 20, API: 40, API_STANDBY: 40}
# supervisord's XML-RPC namespaces, by name: its own, twiddler's (programs added to a group), cnet's (group states).
RPC_INTERFACES = {"supervisor": "supervisor.rpcinterface:make_main_rpcinterface",
                  "twiddler": "supervisor_twiddler.rpcinterface:make_twiddler_rpcinterface",
                  "cnet": "cnetd.launcher.group_states:make_cnet_rpcinterface"}


def rpc_interface(name: str) -> str:
    """The supervisord.conf section that loads the XML-RPC namespace ``name`` (one of ``RPC_INTERFACES``)."""
    return f"[rpcinterface:{name}]\nsupervisor.rpcinterface_factory = {RPC_INTERFACES[name]}\n"


def _api_argv(config: NodeConfig) -> list[str]:
    """The api program: it takes the listening socket cnetd holds (``cnetd.api.server``), then is gunicorn."""
    return ["-m", "cnetd.api.server", "--worker-class", "cnetd.common.http_worker.DeadlineWorker",
            "--workers", str(config.api_workers), "--threads", str(config.api_threads),
            "--bind", f"{config.address}:{config.port}", "--timeout", "120", "--graceful-timeout", "5",
            "--log-level", config.log_level, "--error-logfile", "-", "--no-control-socket",
            "--config", "python:cnetd.api.gunicorn_hooks", "cnetd.api.app:gunicorn_app()"]


def _argv(name: str, config: NodeConfig) -> list[str]:
    return _api_argv(config) if name in (API, API_STANDBY) else ["-m", f"cnetd.{name}"]


def _rotated(config: NodeConfig, prefix: str) -> str:
    """A log's rotation: at ``logging.max_bytes``, keeping ``logging.backups`` older files (``<log>.1`` …)."""
    return f"{prefix}logfile_maxbytes={config.log_max_bytes}\n{prefix}logfile_backups={config.log_backups}\n"


def render(config: NodeConfig, python: str) -> str:
    """The node programs run in the runtime dir: ``python -m`` puts the working directory first on the import
    path, and cnetd's own (a checkout, say) must not decide which code they run."""
    paths = config.paths
    logs = paths.logs_dir
    environment = (f'CNET_RUNTIME_DIR="{escape(str(paths.root))}",PYTHONUNBUFFERED="1",'
                   f'{MULTIPROCESS_ENV}="{escape(str(paths.metrics_dir))}"')
    sections = [
        f"[unix_http_server]\nfile={escape(str(paths.supervisor_socket))}\nchmod=0700",
        f"[supervisord]\nlogfile={escape(str(logs / 'supervisord.log'))}\n{_rotated(config, '')}"
        f"pidfile={escape(str(paths.supervisord_pid))}\nchildlogdir={escape(str(logs))}\n"
        f"nodaemon=true\numask=077\nloglevel={'warn' if config.log_level == 'warning' else config.log_level}\n"
        f"identifier=cnet-{config.node_id}",
        *(rpc_interface(name) for name in RPC_INTERFACES),
        f"[supervisorctl]\nserverurl=unix://{escape(str(paths.supervisor_socket))}",
    ]
    for name in (*NODE_PROGRAMS, API_STANDBY):
        argv = [*DIE_WITH_SUPERVISORD, python, *_argv(name, config)]
        starts = "false" if name == API_STANDBY else "true"
        sections.append(
            f"[program:{name}]\ncommand={escape(shlex.join(argv))}\ndirectory={escape(str(paths.root))}\n"
            f"priority={_PRIORITIES[name]}\n"
            f"autostart={starts}\nautorestart={starts}\nstartsecs=1\nstartretries=10\nstopasgroup=true\n"
            f"killasgroup=true\nstopwaitsecs=10\nredirect_stderr=true\n{_rotated(config, 'stdout_')}"
            f"stdout_logfile={escape(str(logs / (name + '.log')))}\nenvironment={environment}")
    monitor_argv = [*DIE_WITH_SUPERVISORD, python, "-m", "cnetd.monitor"]
    sections.append(
        f"[eventlistener:{MONITOR}]\ncommand={escape(shlex.join(monitor_argv))}\ndirectory={escape(str(paths.root))}\n"
        "priority=30\n"
        f"events={','.join((*SETTLING_EVENTS, SETTLE_ALL_EVENT))}\nbuffer_size=1024\nautorestart=true\nstartsecs=1\n"
        "startretries=10\n"
        f"stdout_logfile=NONE\n{_rotated(config, 'stderr_')}"
        f"stderr_logfile={escape(str(logs / 'monitor.log'))}\nenvironment={environment}")
    sections.append(f"[group:{WORKLOAD_GROUP}]\nprograms=")
    return "\n\n".join(sections) + "\n"
