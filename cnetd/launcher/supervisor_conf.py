"""Renders a node's supervisord.conf: the node processes, the monitor event listener and the workload group."""
from __future__ import annotations

import shlex

from cnetd.core.config import NodeConfig
from cnetd.core.metrics import MULTIPROCESS_ENV
from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.core.supervisor_rpc import DIE_WITH_SUPERVISORD, escape

# Lower priority starts first and stops last: workloads (default 999) stop before the node processes.
_NODE_PROGRAMS = (
    ("register", ["-m", "cnetd.register"], 10),
    ("scheduler", ["-m", "cnetd.scheduler"], 20),
    ("api", None, 40),
)


def _api_argv(config: NodeConfig) -> list[str]:
    return ["-m", "gunicorn", "--worker-class", "cnetd.common.http_worker.DeadlineWorker",
            "--workers", str(config.api_workers), "--threads", str(config.api_threads), "--bind", f"{config.address}:{config.port}",
            "--timeout", "120", "--graceful-timeout", "5", "--log-level", config.log_level,
            "--error-logfile", "-", "--no-control-socket", "--config", "python:cnetd.api.gunicorn_hooks", "cnetd.api.app:gunicorn_app()"]


def render(config: NodeConfig, python: str) -> str:
    paths = config.paths
    logs = paths.logs_dir
    environment = (f'CNET_RUNTIME_DIR="{escape(str(paths.root))}",PYTHONUNBUFFERED="1",'
                   f'{MULTIPROCESS_ENV}="{escape(str(paths.metrics_dir))}"')
    sections = [
        f"[unix_http_server]\nfile={escape(str(paths.supervisor_socket))}\nchmod=0700",
        f"[supervisord]\nlogfile={escape(str(logs / 'supervisord.log'))}\n"
        f"pidfile={escape(str(paths.supervisord_pid))}\nchildlogdir={escape(str(logs))}\n"
        f"nodaemon=true\numask=077\nloglevel={'warn' if config.log_level == 'warning' else config.log_level}\n"
        f"identifier=cnet-{config.node_id}",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[rpcinterface:twiddler]\n"
        "supervisor.rpcinterface_factory = supervisor_twiddler.rpcinterface:make_twiddler_rpcinterface",
        f"[supervisorctl]\nserverurl=unix://{escape(str(paths.supervisor_socket))}",
    ]
    for name, args, priority in _NODE_PROGRAMS:
        argv = [*DIE_WITH_SUPERVISORD, python, *(args if args is not None else _api_argv(config))]
        sections.append(
            f"[program:{name}]\ncommand={escape(shlex.join(argv))}\npriority={priority}\n"
            "autostart=true\nautorestart=true\nstartsecs=1\nstartretries=10\nstopasgroup=true\n"
            f"killasgroup=true\nstopwaitsecs=10\nredirect_stderr=true\n"
            f"stdout_logfile={escape(str(logs / (name + '.log')))}\nenvironment={environment}")
    monitor_argv = [*DIE_WITH_SUPERVISORD, python, "-m", "cnetd.monitor"]
    sections.append(
        f"[eventlistener:monitor]\ncommand={escape(shlex.join(monitor_argv))}\npriority=30\n"
        "events=PROCESS_STATE,TICK_5\nbuffer_size=1024\nautorestart=true\nstartsecs=1\nstartretries=10\n"
        "stdout_logfile=NONE\n"
        f"stderr_logfile={escape(str(logs / 'monitor.log'))}\nenvironment={environment}")
    sections.append(f"[group:{WORKLOAD_GROUP}]\nprograms=")
    return "\n\n".join(sections) + "\n"
