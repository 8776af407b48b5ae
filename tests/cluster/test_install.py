"""CNET as a package: the wheel ``make dist`` builds, installed into a fresh venv away from the checkout (not
editable), runs a node with its console, its CLI and every service type; the offline bundle installs and
starts a node on a test host that has no route out; the systemd unit passes ``systemd-analyze verify`` (a
broken one is the control)."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import requests
import yaml

from cnetd import __version__
from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.hosts import make_hosts
from tests.support.nodes import GIB, free_port, wait_until_answers
from tests.support.packaging import REPO, build_bundle, build_dist, fresh_venv

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def bundle() -> Iterator[Path]:
    """The wheel and the bundle, built into a folder of their own (0711: workloads pass through it)."""
    folder = Path(tempfile.mkdtemp(prefix="cnet-dist-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        build_dist(folder)
        yield build_bundle(folder)
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def node_config(root: Path, address: str, port: int) -> dict:
    state = root / "state"
    return {"agent": {"node_id": "installed", "address": address, "port": port, "runtime_dir": str(state / "node")},
            "mesh": {"port": free_port() if address == "127.0.0.1" else 8081},
            "resources": {"cpu": 4, "memory": 8 * GIB, "gpu": 0, "storage": 4 * GIB},
            "storage": {"sqlite": {"db_path": str(state / "storage.db"), "data_path": str(state / "data")}},
            "logging": {"level": "info", "format": "text"}}


def stop(process: psutil.Process) -> None:
    """SIGTERM cnetd, as systemd's stop does, and see that nothing of its node is left."""
    runtime_dir = next((value for value in [process.environ().get("CNET_RUNTIME_DIR")] if value), None)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    left = [other for other in psutil.process_iter(["environ"])
            if runtime_dir and (other.info["environ"] or {}).get("CNET_RUNTIME_DIR") == runtime_dir]
    assert not left, left


def test_the_wheel_in_a_fresh_venv_runs_a_node_with_its_console_cli_and_every_service_type(bundle: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="cnet-wheel-", dir="/tmp"))
    root.chmod(0o711)
    cnetd = None
    try:
        bin_dir = fresh_venv(root / "venv", next(bundle.glob("cnet-*.whl")), bundle / "wheelhouse")
        assert not list((root / "venv/lib").rglob("__editable__*"))  # installed, not linked to the checkout
        assert subprocess.run([str(bin_dir / "cnet"), "--version"], capture_output=True, text=True,
                              cwd=root).stdout.strip() == f"cnet, version {__version__}"
        port = free_port()
        config = root / "config.yaml"
        config.write_text(yaml.safe_dump(node_config(root, "127.0.0.1", port)))
        output = open(root / "cnetd.out", "wb")
        cnetd = subprocess.Popen([str(bin_dir / "cnetd"), "-config", str(config)], cwd=root, stdout=output,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{url}/api/health", process=cnetd)
        # Its processes run the installed package, not the checkout.
        api_pid = int(next(line for line in subprocess.run(
            [str(bin_dir / "supervisorctl"), "-c", str(root / "state/node/supervisord.conf"), "pid", "api"],
            capture_output=True, text=True).stdout.splitlines()))
        assert psutil.Process(api_pid).exe().startswith("/usr/bin/python3")
        assert str(root / "venv") in " ".join(psutil.Process(api_pid).cmdline())
        assert "CNET" in requests.get(f"{url}/", timeout=10).text  # the console, from the wheel's static files
        assert requests.get(f"{url}/ui/js/main.js", timeout=10).ok
        cli = {"CNET_ADDR": url, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}

        def cnet(*args: str) -> str:
            done = subprocess.run([str(bin_dir / "cnet"), *args], capture_output=True, text=True, env=cli, cwd=root,
                                  timeout=180)
            assert done.returncode == 0, done.stderr
            return done.stdout
        ids = []
        for spec in ({"type": "opencv", "config": {"cascade_type": "face"}, "requirements": {"cpu": 1}},
                     {"type": "mlmodel", "config": {"model_type": "yolo", "model_path": YOLO_MODEL},
                      "requirements": {"cpu": 1}},
                     {"type": "datagateway", "config": {"base_path": str(root / "state/data")},
                      "requirements": {"cpu": 0.5}},
                     {"type": "process", "config": {"command": "sleep", "args": ["600"]}}):
            path = root / f"{spec['type']}.yaml"
            path.write_text(yaml.safe_dump(spec))
            record = yaml.safe_load(cnet("run", str(path), "-o", "json"))
            assert record["status"] == "running", record
            ids.append(record["id"])
        for service in ids[:2]:
            found = yaml.safe_load(cnet("predict", service, ASTRONAUT, "-o", "json"))
            assert found["count"] >= 1 and found["detections"][0]["class"] in ("face", "FACE_FEMALE"), found
        assert requests.get(f"{url}/api/workloads/{ids[2]}", timeout=10).json()["endpoint"]
        for workload_id in ids:
            cnet("rm", workload_id)
    finally:
        if cnetd is not None and cnetd.poll() is None:
            stop(psutil.Process(cnetd.pid))
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_the_bundle_installs_and_starts_a_node_on_a_host_with_no_route_out(bundle: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="cnet-bundle-", dir="/tmp"))
    root.chmod(0o711)
    try:
        with make_hosts(1) as hosts:
            host = hosts[0]
            routes = subprocess.run(["ip", "netns", "exec", host.namespace, "ip", "route"], capture_output=True,
                                    text=True, check=True).stdout
            assert "default" not in routes, routes  # no way to a registry: everything comes from the bundle
            (root / "etc").mkdir()
            (root / "etc/config.yaml").write_text(yaml.safe_dump({**node_config(root, host.address, 8080),
                                                                  "auth": {"token": "bundle-token"}}))
            installed = subprocess.run(
                [*host.launcher(), "sh", str(bundle / "install.sh"), "--prefix", str(root / "opt"),
                 "--config-dir", str(root / "etc"), "--state-dir", str(root / "state")],
                capture_output=True, text=True, timeout=900, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
            assert installed.returncode == 0, installed.stdout + installed.stderr
            assert f"installed cnet {__version__}" in installed.stdout and "node ready" in installed.stdout
            url = f"http://{host.address}:8080"
            health = requests.get(f"{url}/api/health", timeout=10).json()
            assert health["version"] == __version__ and health["node"] == "installed"
            cnetd = psutil.Process(int((root / "state/cnetd.pid").read_text()))
            assert str(root / "opt/venv") in " ".join(cnetd.cmdline())
            try:
                served = requests.post(f"{url}/api/workloads", timeout=60,
                                       headers={"Authorization": "Bearer bundle-token"},
                                       json={"type": "process", "config": {"command": "sleep", "args": ["60"]}})
                assert served.status_code == 201 and served.json()["status"] == "running", served.text
            finally:
                stop(cnetd)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def unit(prefix: Path) -> str:
    text = (REPO / "deploy/systemd/cnet.service").read_text()
    return text.replace("@PREFIX@", str(prefix)).replace("@CONFIG@", "/etc/cnet/config.yaml")


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    installed, missing = tmp_path / "opt", tmp_path / "nowhere"
    (installed / "venv/bin").mkdir(parents=True)
    os.symlink(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin/cnetd", installed / "venv/bin/cnetd")
    good, bad = tmp_path / "good" / "cnet.service", tmp_path / "bad" / "cnet.service"
    for path, prefix in ((good, installed), (bad, missing)):
        path.parent.mkdir()
        path.write_text(unit(prefix))
    verified = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and "cnet.service" not in verified.stderr, verified.stderr
    refused = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "cnetd" in refused.stderr, refused.stderr  # the control: it can fail
