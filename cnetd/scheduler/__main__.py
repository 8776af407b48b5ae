"""``python -m cnetd.scheduler``: the scheduler process."""
from cnetd.core.node_process import open_node_process
from cnetd.scheduler.scheduler import Scheduler


def main() -> None:
    node = open_node_process("scheduler")
    Scheduler(node, node.supervisor()).serve()


main()
