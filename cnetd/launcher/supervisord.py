"""``python -m cnetd.launcher.supervisord``: supervisor's own supervisord, started without OpenSSL's TLS library.

supervisord serves XML-RPC on the node's unix socket and never speaks TLS, but its XML-RPC module imports
``http.client``, which loads ``ssl``: 0.7 MiB of an idle node (``bench/idle_memory.py``), here as in the
node's daemons (``cnetd.common.http_without_tls``). Everything else is supervisord's ``main``."""
from cnetd.common.http_without_tls import load_http_client_without_tls

load_http_client_without_tls()

from supervisor.supervisord import main  # noqa: E402

if __name__ == "__main__":
    main()
