"""cnet-tap against a real node: one line per heartbeat, by mesh endpoint or API address, clean Ctrl-C."""
from __future__ import annotations

import signal
import subprocess
import time

from tests.nodes import VENV_BIN


def test_tap_prints_heartbeats_and_stops_on_ctrl_c(start_node) -> None:
    node = start_node()
    result = subprocess.run([str(VENV_BIN / "cnet-tap"), f"tcp://127.0.0.1:{node.mesh_port}", "--count", "2"],
                            input="", capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 2
    assert f"node={node.node_id} seq=" in lines[0] and "cpu=8/8" in lines[0] and "workloads=0" in lines[0]

    tap = subprocess.Popen([str(VENV_BIN / "cnet-tap"), node.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        node.submit({"command": "sleep", "args": ["60"]}, {"cpu": 2})  # a triggered heartbeat
        time.sleep(1.0)
        tap.send_signal(signal.SIGINT)
        out, err = tap.communicate(timeout=10)
    finally:
        tap.kill()
    assert tap.returncode == 0 and "Traceback" not in err
    assert any("cpu=6/8" in line and "running=1" in line for line in out.splitlines()), out


def test_tap_names_a_bad_target() -> None:
    result = subprocess.run([str(VENV_BIN / "cnet-tap"), "udp://nowhere"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "expected tcp://" in result.stderr
