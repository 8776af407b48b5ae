"""supervisord as cnetd runs it (``cnetd.launcher.supervisord``) answers a large XML-RPC call in few turns of its
loop, each of which looks at every program: the monitor's ``getAllProcessInfo`` with 1,000 programs (1.3 MB).

Run in a fresh interpreter: importing the launcher changes supervisor's classes. Stock supervisor's 4 KiB slice,
in the same script, is the control."""
from __future__ import annotations

import json

from tests.support.fresh_python import fresh_python

SCRIPT = """
import json, socket, types
from supervisor import http
from supervisor.medusa.counter import counter
from supervisor.medusa.producers import simple_producer

stock = http.deferring_http_channel.ac_out_buffer_size
from cnetd.launcher import supervisord  # noqa: F401
ours = http.deferring_http_channel.ac_out_buffer_size
HEADER, ANSWER = b"HTTP/1.1 200 OK\\r\\n\\r\\n", b"x" * 1_300_000

def turns(slice_bytes):
    http.deferring_http_channel.ac_out_buffer_size = slice_bytes
    served, client = socket.socketpair()
    client.setblocking(False)
    server = types.SimpleNamespace(bytes_out=counter(), bytes_in=counter())  # what a channel counts bytes on
    channel = http.deferring_http_channel(server, served, "client")
    # As supervisord answers a call (deferring_http_request.done): the header and the body, globbed.
    channel.push_with_producer(http.deferring_globbing_producer(http.deferring_composite_producer(
        [simple_producer(HEADER), simple_producer(ANSWER)])))  # its first turn
    count, received = 1, 0
    while True:
        try:
            while chunk := client.recv(1 << 20):  # the client reads what has come
                received += len(chunk)
        except BlockingIOError:
            pass
        if not channel.writable():
            break
        channel.initiate_send()  # the loop's next turn
        count += 1
    channel.close()
    client.close()
    return {"turns": count, "whole": received == len(HEADER) + len(ANSWER)}

print(json.dumps({"cnetd": turns(ours), "stock": turns(stock)}))
"""


def test_a_large_answer_takes_a_few_turns_of_supervisords_loop_and_stock_takes_hundreds() -> None:
    ran = fresh_python(SCRIPT)
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["cnetd"]["whole"] and seen["cnetd"]["turns"] <= 30, seen
    assert seen["stock"]["whole"] and seen["stock"]["turns"] >= 300, seen  # the control: a 4 KiB slice a turn
