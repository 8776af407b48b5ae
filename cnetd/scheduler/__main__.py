"""``python -m cnetd.scheduler``: the scheduler process."""
from cnetd.common.http_without_tls import load_http_client_without_tls

load_http_client_without_tls()  # before the imports below bring http.client

from cnetd.core.node_process import open_node_process  # noqa: E402
from cnetd.scheduler.scheduler import Scheduler  # noqa: E402


def main() -> None:
    node = open_node_process("scheduler")
    Scheduler(node, node.supervisor()).serve()


main()
