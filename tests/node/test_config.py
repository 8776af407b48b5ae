"""Config validation: defaults, auto detection, and one clear line naming the key for every bad value."""
from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import orjson
import pytest
import yaml

from cnetd.api.guard import known_hosts
from cnetd.core.config import ConfigError, NodeConfig, load_config, parse_config
from cnetd.common.private_files import default_runtime_root
from workers.base import NICE, at_workload_priority
from tests.support.nodes import VENV_BIN

BASE = {"agent": {"node_id": "nanjing", "address": "127.0.0.1", "port": 8081}}


def with_(section: str, **values) -> dict:
    config = {key: dict(value) for key, value in BASE.items()}
    config.setdefault(section, {}).update(values)
    return config


def test_original_config_shape_is_accepted() -> None:
    config = parse_config({
        "agent": {"node_id": "nanjing", "address": "0.0.0.0", "port": 8081},
        "resources": {"cpu": 8.0, "gpu": 1, "memory": 17179869184, "storage": 214748364800},
        "parent": {"enabled": True, "address": "localhost:8080"},
        "peers": {"enabled": True, "addresses": ["localhost:8082", "localhost:8083"]},
        "logging": {"level": "info", "format": "json"},
        "storage": {"sqlite": {"db_path": "/tmp/cnet_storage.db", "data_path": "/tmp/cnet_data"}},
        "auth": {"token": "s3cret"},
    })
    assert config.capacity.cpu == 8.0 and config.capacity.gpu == 1 and config.capacity.memory == 17179869184
    assert config.parent_address == "localhost:8080" and config.peer_addresses == ("localhost:8082", "localhost:8083")
    assert config.mesh_port == 9081 and config.runtime_dir == str(default_runtime_root() / "nanjing")
    assert not config.runtime_dir.startswith("/tmp/")  # private by default, not a shared predictable path
    assert config.api_url == "http://127.0.0.1:8081"


def test_reachable_nodes_need_a_token(monkeypatch) -> None:
    monkeypatch.delenv("CNET_TOKEN", raising=False)
    with pytest.raises(ConfigError) as refused:
        parse_config(with_("agent", address="0.0.0.0"))
    assert refused.value.key == "auth.token" and "auth.insecure" in str(refused.value)
    assert parse_config({**with_("agent", address="0.0.0.0"), "auth": {"insecure": True}}).auth_token is None
    assert parse_config(with_("agent", address="127.0.0.1")).auth_token is None
    monkeypatch.setenv("CNET_TOKEN", "from-env")
    assert parse_config(with_("agent", address="0.0.0.0")).auth_token == "from-env"


@pytest.mark.parametrize("address", ["127.attacker.example", "127.0.0.1.nip.example", "198.51.100.1"])
def test_the_loopback_check_judges_addresses_not_text(monkeypatch, address: str) -> None:
    monkeypatch.delenv("CNET_TOKEN", raising=False)
    with pytest.raises(ConfigError) as refused:
        parse_config(with_("agent", address=address))
    assert refused.value.key == "auth.token"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_addresses_and_names_need_no_token(monkeypatch, address: str) -> None:
    monkeypatch.delenv("CNET_TOKEN", raising=False)
    assert parse_config(with_("agent", address=address)).auth_token is None


def test_auto_resources_are_detected() -> None:
    config = parse_config(with_("resources", cpu="auto", memory="auto", gpu="auto", storage="auto"))
    assert config.capacity.cpu >= 1 and config.capacity.memory > 2**20 and config.capacity.storage > 0
    assert config.capacity.gpu == 0  # no NVIDIA GPU on the machines that run this suite


def test_gpu_auto_without_nvml_logs_why(caplog) -> None:
    with caplog.at_level("INFO"):
        parse_config(with_("resources", gpu="auto"))
    assert any("gpu auto: 0 GPUs" in message for message in caplog.messages)


@pytest.mark.parametrize("raw, key", [
    (with_("resources", cpu=-1), "resources.cpu"),
    (with_("resources", memory="lots"), "resources.memory"),
    (with_("resources", gpu=1.5), "resources.gpu"),
    (with_("agent", port=70000), "agent.port"),
    (with_("agent", node_id="bad id"), "agent.node_id"),
    ({"agent": {"port": 8081}}, "agent.node_id"),
    (with_("logging", level="loud"), "logging.level"),
    (with_("logging", max_bytes=0), "logging.max_bytes"),  # 0 is supervisord's "never rotate"
    (with_("logging", backups=-1), "logging.backups"),
    (with_("parent", enabled=True, address="nohost"), "parent.address"),
    (with_("peers", enabled=True, addresses=["a:1", 7]), "peers.addresses[1]"),
    (with_("scheduler", strategy="random"), "scheduler.strategy"),
    (with_("resource", cpu=1), "resource"),
    (with_("agent", nodeid="x"), "agent.nodeid"),
    (with_("agent", runtime_dir="/tmp/" + "x" * 120), "agent.runtime_dir"),
])
def test_bad_values_name_their_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert error.value.key == key and str(error.value).startswith(f"{key}: ")


def test_cnetd_refuses_bad_config_with_one_line(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(with_("resources", cpu=-2)))
    result = subprocess.run([str(VENV_BIN / "cnetd"), "-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"cnetd: config error in {path}: resources.cpu: expected a number > 0, got -2"]


def test_resolved_config_round_trips_through_runtime_dir(tmp_path) -> None:
    config = parse_config(with_("agent", runtime_dir=str(tmp_path / "rt")))
    config.paths.create()
    config.save()
    assert NodeConfig.from_runtime_dir(config.runtime_dir) == config


# What node.json held as 0.2.0 wrote it (the oldest version a reload upgrades in place: README).
FIELDS_OF_0_2 = frozenset("""node_id address advertise_address port runtime_dir capacity gpu_devices parent_address
    peer_addresses log_level log_format db_path data_path api_workers api_threads api_max_body_bytes
    api_client_timeout_s api_client_min_rate_bytes_s mesh_port heartbeat_period_s strategy max_hops
    health_interval_s container_engine auth_token mesh_curve api_allowed_hosts auth_open_reads gateway_allowed_roots
    workloads_user workloads_allow_root workloads_allowed_users health_start_timeout_s mesh_forget_after_s
    models_cache_bytes models_s3 replicas_lost_after_s replicas_max labels""".split())


def test_a_node_json_written_by_an_older_version_is_read_for_a_reload(tmp_path) -> None:
    """``cnetd reload`` reads the node.json that the version it replaces wrote: a field added since without a
    default made every reload from it refuse ("no node has run in ..."), its node left on the old code."""
    added = [field for field in dataclasses.fields(NodeConfig) if field.name not in FIELDS_OF_0_2]
    assert [field.name for field in added if field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING] == []
    config = parse_config(with_("agent", runtime_dir=str(tmp_path / "rt")))
    config.paths.create()
    written = {name: value for name, value in dataclasses.asdict(config).items() if name in FIELDS_OF_0_2}
    config.paths.node_config.write_bytes(orjson.dumps(written))
    assert NodeConfig.from_runtime_dir(config.runtime_dir) == config  # the added fields take their defaults


def test_defaults_file_then_config_then_environment(tmp_path: Path) -> None:
    """The container image's layers: its defaults (state under one folder) under a mounted config, and
    CNET__SECTION__KEY variables over both, each a YAML value."""
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(yaml.safe_dump({"agent": {"runtime_dir": str(tmp_path / "rt"), "port": 8080},
                                        "storage": {"sqlite": {"data_path": str(tmp_path / "data")}}}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"agent": {"node_id": "nanjing", "port": 8081}}))
    environ = {"CNET_CONFIG_DEFAULTS": str(defaults), "CNET__PARENT__ENABLED": "true",
               "CNET__PARENT__ADDRESS": "jiangsu:8080", "CNET__AGENT__LABELS": "{zone: east}"}
    loaded = load_config(str(config), environ)
    assert (loaded.runtime_dir, loaded.data_path, loaded.port) == (str(tmp_path / "rt"), str(tmp_path / "data"), 8081)
    assert (loaded.parent_address, loaded.labels) == ("jiangsu:8080", {"zone": "east"})
    assert load_config(str(config), {**environ, "CNET__AGENT__PORT": "9000"}).port == 9000
    assert load_config(str(config), {}).runtime_dir != str(tmp_path / "rt")  # the control: no defaults file named
    with pytest.raises(ConfigError, match="agent.port: expected a port number"):
        load_config(str(config), {"CNET__AGENT__PORT": "high"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(config), {"CNET_CONFIG_DEFAULTS": str(tmp_path / "missing.yaml")})


@pytest.mark.parametrize("closed", ["runtime", "data"])
def test_a_node_refuses_to_start_where_its_workloads_could_not_reach_their_dirs(closed: str) -> None:
    """Under a 0700 folder (mktemp -d, a home) the workload user (nobody) could not pass: every workload would
    fail once admitted. The node refuses to start, naming the folder and the user; the control, 0711, starts
    far enough to find another problem."""
    tmp_path = Path(tempfile.mkdtemp(prefix="cnet-reach-", dir="/tmp"))  # pytest's own lie under a 0700 folder
    tmp_path.chmod(0o711)
    try:
        _refuses_then_passes(tmp_path, closed)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _refuses_then_passes(tmp_path: Path, closed: str) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    outside = tmp_path / "outside"
    runtime = (private if closed == "runtime" else outside) / "rt"
    data = (private if closed == "data" else outside) / "data"
    with socket.socket() as taken:  # the control stops at a port held here (root could bind any free one)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = tmp_path / "node.yaml"
        config.write_text(yaml.safe_dump({
            **BASE, "agent": {**BASE["agent"], "runtime_dir": str(runtime), "port": taken.getsockname()[1]},
            "storage": {"sqlite": {"db_path": str(tmp_path / "db"), "data_path": str(data)}}}))
        result = subprocess.run([str(VENV_BIN / "cnetd"), "-config", str(config)], capture_output=True, text=True,
                                timeout=60)
        key = "agent.runtime_dir" if closed == "runtime" else "storage.sqlite.data_path"
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert f"{key}: {private} does not let nobody (workloads.user) pass" in result.stderr, result.stderr
        private.chmod(0o711)  # the control: passable, it gets past this check (and stops at the port in use)
        again = subprocess.run([str(VENV_BIN / "cnetd"), "-config", str(config)], capture_output=True, text=True,
                               timeout=60)
    assert again.returncode == 1 and "does not let" not in again.stderr and "agent.port" in again.stderr, again.stderr


def test_a_node_on_every_interface_answers_to_each_of_the_machines_addresses() -> None:
    """``known_hosts`` lists the machine's addresses (psutil, loaded for this case only) and its names."""
    import psutil
    config = parse_config({**with_("agent", address="0.0.0.0"), "auth": {"insecure": True}})
    names = known_hosts(config)
    addresses = {address.address.split("%")[0] for addresses in psutil.net_if_addrs().values()
                 for address in addresses if address.family in (socket.AF_INET, socket.AF_INET6)}
    assert addresses and addresses <= names and socket.gethostname() in names
    assert known_hosts(parse_config(with_("agent", address="127.0.0.1"))) == {"127.0.0.1"}


def test_workloads_nice_is_a_priority_below_the_nodes() -> None:
    assert parse_config(with_("agent")).workloads_nice == 10
    assert at_workload_priority(["sleep", "1"], parse_config(with_("agent")).workload_context) == \
        [NICE, "-n", "10", "sleep", "1"]
    assert at_workload_priority(["sleep", "1"], parse_config(with_("workloads", nice=0)).workload_context) == ["sleep", "1"]
    for refused in (-1, 20, 2.5, True, "low"):
        with pytest.raises(ConfigError) as error:
            parse_config(with_("workloads", nice=refused))
        assert error.value.key == "workloads.nice"
