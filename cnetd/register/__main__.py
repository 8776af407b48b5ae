"""``python -m cnetd.register``: the register process."""
from cnetd.core.node_process import open_node_process
from cnetd.register.heartbeats import Register

Register(open_node_process("register")).run()
