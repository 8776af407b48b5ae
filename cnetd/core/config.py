"""Node configuration: the YAML file, validated into a ``NodeConfig``; a bad key fails with one clear line."""
from __future__ import annotations

import dataclasses
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson

from cnetd.core import hostinfo
from cnetd.common.addresses import is_loopback
from cnetd.common.request_deadline import DEFAULT_MIN_RATE_BYTES_S, DEFAULT_TIMEOUT_S
from cnetd.common.paths import IPC_PATH_MAX, RuntimePaths
from cnetd.common.private_files import default_runtime_root, write_private
from ledger.records import Resources
from cnetd.core.s3 import S3Endpoint
from mesh.curve import ClusterKeys
from mesh.messages import LABEL, LABELS_MAX_BYTES, NODE_ID
from workers.base import NodeContext

AUTO = "auto"
DEFAULT_WORKLOADS_NICE = 10
DEFAULT_WORKLOADS_USER = "nobody"  # as root; a node not run as root runs workloads as itself
DEFAULT_KEEP_FINISHED = 100
MAX_REPLICAS = 64  # the most replicas one deployment may have (here; the deployments' spec checks it)
STRATEGIES = ("local-first", "best-fit", "spread")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")
# The node's own logs (each process's, and supervisord's) rotate at this size, keeping this many older files:
# at most 4 x 10 MiB each. supervisord's own default (50 MB, 10 kept: 550 MB a log, 3.3 GB for the six) is
# more than an edge device's disk should give them.
DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_BACKUPS = 10 << 20, 3
DEFAULT_MODELS_CACHE_BYTES = 8 << 30
DOCKER_SOCKET = "unix:///var/run/docker.sock"  # the usual engine address when neither config nor DOCKER_HOST say
MESH_PORT_OFFSET = 1000  # default mesh port: API port + 1000 (8080 → 9080)
DEFAULTS_ENV = "CNET_CONFIG_DEFAULTS"  # a YAML file of what a config leaves out (the container image sets it)
OVERRIDE_PREFIX = "CNET__"  # CNET__AGENT__NODE_ID=jiangsu sets agent.node_id over the config file
_HOST_PORT = re.compile(r"^[^:\s]+:\d{1,5}$")


class ConfigError(Exception):
    """A config value that cannot be used; the message names the key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


# Read without the token by default: liveness, the console's own files, the API document and metrics. Workload
# records (configs, env values), logs and data need it.
OPEN_READS = ("/api/health", "/", "/ui/", "/api/openapi.json", "/metrics")


@dataclass(frozen=True)
class NodeConfig:
    """A node's validated configuration, with ``auto`` resources already resolved."""

    node_id: str
    address: str
    advertise_address: str
    port: int
    runtime_dir: str
    capacity: Resources
    gpu_devices: tuple[dict[str, Any], ...]
    parent_address: str | None
    peer_addresses: tuple[str, ...]
    log_level: str
    log_format: str
    db_path: str
    data_path: str
    api_workers: int
    api_threads: int
    api_max_body_bytes: int
    api_client_timeout_s: float
    api_client_min_rate_bytes_s: float
    mesh_port: int
    heartbeat_period_s: float
    strategy: str
    max_hops: int
    health_interval_s: float
    container_engine: str
    auth_token: str | None
    mesh_curve: dict[str, str] | None = None  # the cluster's CURVE key pair (Z85): public_key, secret_key
    api_allowed_hosts: tuple[str, ...] = ()  # further names the API answers to (besides its own addresses)
    auth_open_reads: tuple[str, ...] = OPEN_READS  # with a token: paths (a trailing / for a prefix) read without it
    gateway_allowed_roots: tuple[str, ...] = ()  # where a datagateway's base_path may lie, besides the data path
    workloads_user: str | None = None  # process workloads run as this user (None: a node not run as root)
    workloads_allow_root: bool = False
    workloads_allowed_users: tuple[str, ...] = ()  # users a workload may ask for besides workloads_user
    workloads_nice: int = DEFAULT_WORKLOADS_NICE  # workloads' CPU priority below the node's own processes
    workloads_keep_finished: int = DEFAULT_KEEP_FINISHED  # finished workloads kept; older ones are deleted
    health_start_timeout_s: float = 120.0  # a service not healthy this long after its start is failed
    mesh_forget_after_s: float = 86400.0  # a child silent this long is dropped from the node table
    models_cache_bytes: int = DEFAULT_MODELS_CACHE_BYTES  # the model cache's most bytes (LRU eviction past it)
    models_s3: S3Endpoint | None = None  # where s3:// model sources are fetched from
    replicas_lost_after_s: float = 60.0  # a replica whose node is offline this long is replaced elsewhere
    replicas_cold_start_timeout_s: float = 30.0  # a request held for an autoscaled deployment's first replica
    replicas_max: int = MAX_REPLICAS  # the most replicas one deployment submitted here may have
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # agent.labels: what constraints match
    # Defaults, as every field added since 0.2 has: a reload reads the node.json that the version it replaces
    # wrote (tests/node/test_config.py: FIELDS_OF_0_2).
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES  # the node's own logs rotate at this size
    log_backups: int = DEFAULT_LOG_BACKUPS  # and keep this many older files

    @property
    def curve_keys(self) -> ClusterKeys | None:
        if not self.mesh_curve:
            return None
        return ClusterKeys.parse(self.mesh_curve["public_key"], self.mesh_curve["secret_key"])

    @property
    def workload_context(self) -> NodeContext:
        """What an executor may know of this node."""
        users = {self.workloads_user, *self.workloads_allowed_users} - {None}
        if self.workloads_allow_root:
            users.add("root")
        return NodeContext(self.node_id, self.paths, self.container_engine,
                           (self.data_path, *self.gateway_allowed_roots), self.workloads_user, frozenset(users),
                           self.workloads_nice)

    @property
    def paths(self) -> RuntimePaths:
        return RuntimePaths(Path(self.runtime_dir))

    @property
    def api_url(self) -> str:
        """Where other nodes and users reach this node's API."""
        return f"http://{self.advertise_address}:{self.port}"

    @property
    def mesh_endpoint(self) -> str:
        """Where other nodes subscribe to this node's heartbeats."""
        return f"tcp://{self.advertise_address}:{self.mesh_port}"

    @property
    def mesh_bind_endpoint(self) -> str:
        return f"tcp://{self.address}:{self.mesh_port}"

    def save(self) -> None:
        """Write the resolved config into the runtime dir, where the node's processes read it."""
        write_private(self.paths.node_config, orjson.dumps(dataclasses.asdict(self)))  # it may hold the token

    @classmethod
    def from_runtime_dir(cls, runtime_dir: str) -> NodeConfig:
        raw = orjson.loads(RuntimePaths(Path(runtime_dir)).node_config.read_bytes())
        return cls(**{**raw, "capacity": Resources.from_dict(raw["capacity"]),
                      "peer_addresses": tuple(raw["peer_addresses"]), "gpu_devices": tuple(raw["gpu_devices"]),
                      "api_allowed_hosts": tuple(raw["api_allowed_hosts"]),
                      "auth_open_reads": tuple(raw["auth_open_reads"]),
                      "gateway_allowed_roots": tuple(raw["gateway_allowed_roots"]),
                      "workloads_allowed_users": tuple(raw["workloads_allowed_users"]),
                      "models_s3": S3Endpoint(**raw["models_s3"]) if raw.get("models_s3") else None})


def load_config(path: str, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """The file at ``path``, over the defaults file that ``$CNET_CONFIG_DEFAULTS`` names (the container
    image's: its state under /var/lib/cnet), under the ``CNET__SECTION__KEY`` variables (a YAML value each:
    ``CNET__AGENT__NODE_ID=jiangsu``, ``CNET__PARENT__ENABLED=true``)."""
    environ = os.environ if environ is None else environ
    raw = _read_yaml(path)
    if environ.get(DEFAULTS_ENV):
        raw = _merged(_read_yaml(environ[DEFAULTS_ENV]), raw)
    return parse_config(_merged(raw, _overrides(environ)))


def _read_yaml(path: str) -> Any:
    import yaml  # here: only the launcher and the CLI read YAML; the node's processes read node.json
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {exc}") from None
    return {} if raw is None else raw


def _merged(under: Any, over: Any) -> Any:
    """``over`` on ``under``, mapping by mapping (any other value of ``over`` replaces)."""
    if not isinstance(under, dict) or not isinstance(over, dict):
        return over
    return {**under, **{key: _merged(under.get(key), value) for key, value in over.items()}}


def _overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    import yaml
    found: dict[str, Any] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(OVERRIDE_PREFIX) or name == OVERRIDE_PREFIX:
            continue
        keys = name[len(OVERRIDE_PREFIX):].lower().split("__")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(".".join(keys), f"{name} is not a YAML value") from None
        section = found
        for key in keys[:-1]:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(".".join(keys), f"{name} sets a key inside a value")
        section[keys[-1]] = value
    return found


# -- validation --------------------------------------------------------------------------------

_SECTIONS: dict[str, tuple[str, ...]] = {
    "agent": ("node_id", "address", "advertise_address", "port", "runtime_dir", "labels"),
    "resources": ("cpu", "gpu", "memory", "storage"),
    "parent": ("enabled", "address"),
    "peers": ("enabled", "addresses"),
    "logging": ("level", "format", "max_bytes", "backups"),
    "storage": ("sqlite",),
    "api": ("workers", "threads", "max_body_bytes", "client_timeout_s", "client_min_rate_bytes_s", "allowed_hosts"),
    "mesh": ("port", "heartbeat_period_s", "curve", "forget_after_s"),
    "scheduler": ("strategy", "max_hops"),
    "health": ("interval_s", "start_timeout_s"),
    "container": ("engine",),
    "auth": ("token", "insecure", "open_reads"),
    "gateway": ("allowed_roots",),
    "workloads": ("user", "allow_root", "allowed_users", "nice", "keep_finished"),
    "models": ("cache_bytes", "s3_endpoint", "s3_region", "s3_access_key", "s3_secret_key"),
    "replicas": ("lost_after_s", "max", "cold_start_timeout_s"),
}


def parse_config(raw: Any) -> NodeConfig:
    if not isinstance(raw, dict):
        raise ConfigError("config", "the file must hold a mapping of sections")
    _reject_unknown(raw)
    get = _Getter(raw)
    node_id = get("agent.node_id", None, _node_id)
    port = get("agent.port", 8080, _port)
    runtime_dir = get("agent.runtime_dir", str(default_runtime_root() / node_id), _string)
    paths = RuntimePaths(Path(runtime_dir))
    if paths.longest_socket_path() > IPC_PATH_MAX:
        raise ConfigError("agent.runtime_dir", f"too long for unix sockets (keep it under {IPC_PATH_MAX - 16} characters)")
    data_path = get("storage.sqlite.data_path", "/tmp/cnet_data", _string)
    parent_enabled = get("parent.enabled", False, _bool)
    peers_enabled = get("peers.enabled", False, _bool)
    address = get("agent.address", "127.0.0.1", _string)
    gpu_devices = get("resources.gpu", AUTO, _auto_or(
        lambda key, value: hostinfo.declared_gpus(_non_negative_int(key, value)), hostinfo.detect_gpus))
    return NodeConfig(
        node_id=node_id,
        address=address,
        advertise_address=get("agent.advertise_address", "127.0.0.1" if address == "0.0.0.0" else address, _string),
        port=port,
        runtime_dir=runtime_dir,
        capacity=Resources(
            cpu=get("resources.cpu", AUTO, _auto_or(_positive_number, hostinfo.detect_cpu)),
            memory=get("resources.memory", AUTO, _auto_or(_positive_int, hostinfo.detect_memory)),
            gpu=len(gpu_devices),
            storage=get("resources.storage", AUTO,
                        _auto_or(_non_negative_int, lambda: hostinfo.detect_storage(data_path))),
        ),
        gpu_devices=tuple(gpu_devices),
        parent_address=get("parent.address", None, _host_port) if parent_enabled else None,
        peer_addresses=tuple(get("peers.addresses", [], _host_port_list)) if peers_enabled else (),
        log_level=get("logging.level", "info", _one_of(LOG_LEVELS)),
        log_format=get("logging.format", "json", _one_of(LOG_FORMATS)),
        log_max_bytes=get("logging.max_bytes", DEFAULT_LOG_MAX_BYTES, _positive_int),
        log_backups=get("logging.backups", DEFAULT_LOG_BACKUPS, _non_negative_int),
        db_path=get("storage.sqlite.db_path", "/tmp/cnet_storage.db", _string),
        data_path=data_path,
        api_workers=get("api.workers", 1, _positive_int),
        api_threads=get("api.threads", 8, _positive_int),
        api_max_body_bytes=get("api.max_body_bytes", 1 << 20, _positive_int),
        api_client_timeout_s=float(get("api.client_timeout_s", DEFAULT_TIMEOUT_S, _positive_number)),
        api_client_min_rate_bytes_s=float(get("api.client_min_rate_bytes_s", DEFAULT_MIN_RATE_BYTES_S,
                                              _positive_number)),
        mesh_port=get("mesh.port", port + MESH_PORT_OFFSET, _port),
        heartbeat_period_s=float(get("mesh.heartbeat_period_s", 5.0, _positive_number)),
        strategy=get("scheduler.strategy", "local-first", _one_of(STRATEGIES)),
        max_hops=get("scheduler.max_hops", 4, _positive_int),
        health_interval_s=float(get("health.interval_s", 30.0, _positive_number)),
        container_engine=get("container.engine", os.environ.get("DOCKER_HOST") or DOCKER_SOCKET, _string),
        auth_token=_auth_token(get, address),
        mesh_curve=get("mesh.curve", {}, _curve_pair) or None,
        api_allowed_hosts=tuple(get("api.allowed_hosts", [], _string_list)),
        auth_open_reads=tuple(get("auth.open_reads", list(OPEN_READS), _string_list)),
        gateway_allowed_roots=tuple(get("gateway.allowed_roots", [], _string_list)),
        **_workload_users(get),
        workloads_nice=get("workloads.nice", DEFAULT_WORKLOADS_NICE, _nice),
        workloads_keep_finished=get("workloads.keep_finished", DEFAULT_KEEP_FINISHED, _non_negative_int),
        health_start_timeout_s=float(get("health.start_timeout_s", 120.0, _positive_number)),
        mesh_forget_after_s=float(get("mesh.forget_after_s", 86400.0, _positive_number)),
        models_cache_bytes=get("models.cache_bytes", DEFAULT_MODELS_CACHE_BYTES, _positive_int),
        models_s3=_s3_endpoint(get),
        replicas_lost_after_s=float(get("replicas.lost_after_s", 60.0, _positive_number)),
        replicas_cold_start_timeout_s=float(get("replicas.cold_start_timeout_s", 30.0, _positive_number)),
        replicas_max=get("replicas.max", MAX_REPLICAS, _positive_int),
        labels=get("agent.labels", {}, _labels),
    )


def _s3_endpoint(get: "_Getter") -> S3Endpoint | None:
    """Where s3:// model sources are (``models.s3_endpoint``), with the keys that sign for them, if any."""
    endpoint = get("models.s3_endpoint", "", _http_url_or_empty)
    access_key, secret_key = (get(f"models.s3_{name}", "", _string_or_empty) for name in ("access_key", "secret_key"))
    if bool(access_key) != bool(secret_key):
        raise ConfigError("models.s3_access_key", "give models.s3_access_key and models.s3_secret_key together")
    if not endpoint:
        return None
    return S3Endpoint(endpoint, get("models.s3_region", "us-east-1", _string), access_key or None, secret_key or None)


def _string_or_empty(key: str, value: Any) -> str:
    return value if value == "" else _string(key, value)


def _http_url_or_empty(key: str, value: Any) -> str:
    if value == "":
        return value
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _fail(key, "an http:// or https:// URL", value)
    return value.rstrip("/")


def _auth_token(get: "_Getter", address: str) -> str | None:
    """``auth.token`` or CNET_TOKEN; a node reachable from other machines must have one."""
    token = get("auth.token", os.environ.get("CNET_TOKEN") or "", lambda key, value: value)
    if not isinstance(token, str):
        raise _fail("auth.token", "a string", token)
    insecure = get("auth.insecure", False, _bool)
    if not token and not insecure and not is_loopback(address):
        raise ConfigError("auth.token", f"agent.address {address} is reachable from other machines, and anyone "
                          "reaching the API could run commands: set auth.token (or CNET_TOKEN), or "
                          "auth.insecure: true to accept that")
    return token or None


def _account(key: str, value: Any) -> str:
    name = _string(key, value)
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise _fail(key, "a user of this machine", value) from None
    return name


def _workload_users(get: "_Getter") -> dict[str, Any]:
    """``workloads.*``: who process workloads run as. A node not run as root cannot switch: they run as its
    user, which is not root. Root itself only with ``workloads.allow_root``."""
    allow_root = get("workloads.allow_root", False, _bool)
    allowed = tuple(get("workloads.allowed_users", [], lambda key, value: [
        _account(f"{key}[{index}]", item) for index, item in enumerate(_string_list(key, value))]))
    user = get("workloads.user", DEFAULT_WORKLOADS_USER, _account) if os.geteuid() == 0 else None
    for key, name in (("workloads.user", user), *(("workloads.allowed_users", name) for name in allowed)):
        if name is not None and pwd.getpwnam(name).pw_uid == 0 and not allow_root:
            raise ConfigError(key, f"{name} is root: workloads run as root only with workloads.allow_root: true")
    return {"workloads_user": user, "workloads_allow_root": allow_root, "workloads_allowed_users": allowed}


def _curve_pair(key: str, value: Any) -> dict[str, str]:
    """``mesh.curve``: {public_key, secret_key}, one CURVE pair shared by the cluster's nodes (empty: off)."""
    if not isinstance(value, dict) or set(value) - {"public_key", "secret_key"}:
        raise _fail(key, "a mapping with public_key and secret_key (from `cnetd keygen`)", value)
    if not value:
        return {}
    try:
        ClusterKeys.parse(value.get("public_key"), value.get("secret_key"))
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    return {"public_key": value["public_key"], "secret_key": value["secret_key"]}


def _reject_unknown(raw: dict[str, Any]) -> None:
    for section, body in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(str(section), f"unknown section (known: {', '.join(_SECTIONS)})")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(section, "must be a mapping")
        for key in body:
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{section}.{key}", f"unknown key (known: {', '.join(_SECTIONS[section])})")


class _Getter:
    """Reads a dotted key with a default and runs its check, which names the key when it fails."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    def __call__(self, key: str, default: Any, check: Callable[[str, Any], Any]) -> Any:
        node: Any = self._raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if node is None:
            if default is None:
                raise ConfigError(key, "is required")
            node = default
        return check(key, node)


def _fail(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(key, f"expected {expected}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(key, "a non-empty string", value)
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    return value


def _node_id(key: str, value: Any) -> str:
    if not isinstance(value, str) or not NODE_ID.fullmatch(value):
        raise _fail(key, "letters, digits, '.', '_' or '-' (at most 63)", value)
    return value


def _port(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise _fail(key, "a port number 1-65535", value)
    return value


def _positive_number(key: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise _fail(key, "a number > 0", value)
    return float(value)


def _positive_int(key: str, value: Any) -> int:
    if not _is_number(value) or value <= 0 or int(value) != value:
        raise _fail(key, "a whole number > 0", value)
    return int(value)


def _nice(key: str, value: Any) -> int:
    if _non_negative_int(key, value) > 19:
        raise _fail(key, "a whole number from 0 (the node's own priority) to 19 (the lowest)", value)
    return int(value)


def _non_negative_int(key: str, value: Any) -> int:
    if not _is_number(value) or value < 0 or int(value) != value:
        raise _fail(key, "a whole number >= 0", value)
    return int(value)


def _auto_or(check: Callable[[str, Any], Any], detect: Callable[[], Any]) -> Callable[[str, Any], Any]:
    def check_or_detect(key: str, value: Any) -> Any:
        return detect() if value == AUTO else check(key, value)
    return check_or_detect


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise _fail(key, f"one of {', '.join(choices)}", value)
        return value
    return check


def _host_port(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _HOST_PORT.match(value):
        raise _fail(key, "HOST:PORT", value)
    return value


def _labels(key: str, value: Any) -> dict[str, str]:
    """``agent.labels``: names (as node ids are spelt) to short values, which a submission's constraints match."""
    if not isinstance(value, dict):
        raise _fail(key, "a mapping of label names to values", value)
    for name, label in value.items():
        if not isinstance(name, str) or not LABEL.fullmatch(name):
            raise _fail(f"{key}.{name}", "a label name of letters, digits, '.', '_' or '-' (at most 63)", name)
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise _fail(f"{key}.{name}", "a value of letters, digits, '.', '_' or '-' (at most 63)", label)
    size = len(orjson.dumps(value))
    if size > LABELS_MAX_BYTES:  # every heartbeat carries them: a larger set would make each one too large to hear
        raise ConfigError(key, f"expected labels of at most {LABELS_MAX_BYTES} bytes as JSON, got {len(value)} "
                               f"labels of {size} bytes")
    return dict(value)


def _string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _fail(key, "a list of names", value)
    return [_string(f"{key}[{index}]", item) for index, item in enumerate(value)]


def _host_port_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _fail(key, "a list of HOST:PORT", value)
    return [_host_port(f"{key}[{index}]", item) for index, item in enumerate(value)]
