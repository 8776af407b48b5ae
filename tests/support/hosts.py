"""Test hosts: network namespaces with their own addresses on one bridge (``tools/testhosts.sh``), joined by
this test process's namespace, with partitions (``cut`` / ``heal``). Always torn down."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

TESTHOSTS = Path(__file__).resolve().parents[2] / "tools" / "testhosts.sh"
_made: list[str] = []  # one set at a time: every set numbers its hosts from 198.51.100.1


def _testhosts(*args: str) -> str:
    return subprocess.run(["bash", str(TESTHOSTS), *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def can_make_hosts() -> str | None:
    """Why test hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces)"
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    return f"test hosts need {', '.join(missing)} (make test installs them)" if missing else None


@dataclass(frozen=True)
class Host:
    prefix: str
    index: int
    address: str
    hidden: tuple[str, ...] = ()  # directories this host sees empty: its own mount namespace covers them

    def hiding(self, *directories: str) -> Host:
        """This host with a private filesystem over ``directories`` (what is there is not on this host)."""
        return dataclasses.replace(self, hidden=(*self.hidden, *directories))

    @property
    def namespace(self) -> str:
        return f"{self.prefix}{self.index}"

    def launcher(self) -> list[str]:
        """Prefix that runs a command on this host (in a mount namespace of its own when it hides any
        directory: an empty tmpfs over each, as ``tools/testhosts.sh`` shows)."""
        enter = ["ip", "netns", "exec", self.namespace]
        if not self.hidden:
            return enter
        mounts = " && ".join(f"mount -t tmpfs cnet-private {shlex.quote(path)}" for path in self.hidden)
        return [*enter, "unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh"]

    def cut(self) -> None:
        """Partition this host: everything in and out is dropped (connections time out, none is refused)."""
        _testhosts("cut", self.prefix, str(self.index))

    def heal(self) -> None:
        _testhosts("heal", self.prefix, str(self.index))


@contextlib.contextmanager
def make_hosts(count: int) -> Iterator[list[Host]]:
    """``count`` hosts at 198.51.100.1…count; this process reaches them from 198.51.100.254. One set at a
    time (a second would reuse the addresses)."""
    reason = can_make_hosts()
    if reason:
        pytest.skip(reason) if not os.environ.get("CI") else pytest.fail(reason)
    if _made:
        raise RuntimeError(f"test hosts {_made[0]} are still up: one set at a time (they share 198.51.100.0/24)")
    prefix = f"cn{uuid.uuid4().hex[:4]}"
    _made.append(prefix)
    try:
        _testhosts("up", prefix, str(count))
        _testhosts("join", prefix)
        yield [Host(prefix, index, _testhosts("addr", prefix, str(index))) for index in range(1, count + 1)]
    finally:
        _made.remove(prefix)
        _testhosts("down", prefix)
