"""cnet-tap against a real node: one line per heartbeat, by mesh endpoint or API address, clean Ctrl-C."""
from __future__ import annotations

import queue
import signal
import subprocess
import threading

from tests.support.nodes import VENV_BIN


def test_tap_prints_heartbeats_and_stops_on_ctrl_c(start_node) -> None:
    node = start_node()
    result = subprocess.run([str(VENV_BIN / "cnet-tap"), f"tcp://127.0.0.1:{node.mesh_port}", "--count", "2"],
                            input="", capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 2
    assert f"node={node.node_id} seq=" in lines[0] and "free cpu 8 of 8," in lines[0] and "workloads=0" in lines[0]

    # Ctrl-C as a terminal sends it: a suite started in the background (SIGINT ignored, and inherited) too.
    tap = subprocess.Popen([str(VENV_BIN / "cnet-tap"), node.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in tap.stdout], daemon=True).start()
    try:
        seen = [lines.get(timeout=60)]  # the tap is subscribed: a periodic heartbeat reached it
        node.submit({"command": "sleep", "args": ["60"]}, {"cpu": 2})  # triggered heartbeats follow
        while not ("free cpu 6 of 8," in seen[-1] and "running=1" in seen[-1]):
            seen.append(lines.get(timeout=60))
        tap.send_signal(signal.SIGINT)
        tap.wait(timeout=10)
    finally:
        tap.kill()
    assert tap.returncode == 0 and "Traceback" not in tap.stderr.read()


def test_tap_names_a_bad_target() -> None:
    result = subprocess.run([str(VENV_BIN / "cnet-tap"), "udp://nowhere"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "expected tcp://" in result.stderr
