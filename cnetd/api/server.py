"""``python -m cnetd.api.server GUNICORN-ARGUMENTS``: the api program. It takes the API's listening socket
from an api program that runs now (``cnetd.core.api_socket``: a reload's standby, or the api it stands in
for), then becomes gunicorn (``cnetd.api.gunicorn_main``) serving ``cnetd.api.app`` on it, so that ``ps``
shows what runs. With none running (the node's start, a restart after a crash), gunicorn binds the address
itself."""
from __future__ import annotations

import os
import sys

from cnetd.common.paths import RuntimePaths
from cnetd.core.api_socket import take_over

BIND_FLAG = "--bind"


def main() -> None:
    arguments = sys.argv[1:]
    descriptor = take_over(RuntimePaths.of_this_node().api_handover_dir)
    if descriptor is not None:
        at = arguments.index(BIND_FLAG)
        arguments[at + 1] = f"fd://{descriptor}"
    os.execv(sys.executable, [sys.executable, "-m", "cnetd.api.gunicorn_main", *arguments])


if __name__ == "__main__":
    main()
