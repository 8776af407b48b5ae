"""``python -m cnetd.register``: the register process."""
from cnetd.common.http_without_tls import load_http_client_without_tls

load_http_client_without_tls()  # before the imports below bring http.client

from cnetd.core.node_process import open_node_process  # noqa: E402
from cnetd.register.heartbeats import Register  # noqa: E402

Register(open_node_process("register")).run()
