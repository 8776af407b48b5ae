"""Relaying a request as it is, over kept-alive connections (urllib3's pool): the predict and v2 paths of
a service, here or through the next hop. The answer comes back as bytes with the headers that describe
them, so JSON, binary tensors and errors all pass unchanged."""
from __future__ import annotations

from dataclasses import dataclass

import urllib3

from cnetd.common.httpclient import TimedOut, Unreachable

CONNECT_TIMEOUT_S = 5.0
PASSED_HEADERS = ("Content-Type", "Inference-Header-Content-Length", "X-Cnet-Replica", "X-Cnet-Replica-Node")
_POOL = urllib3.PoolManager(num_pools=64, maxsize=32, retries=False, block=False)


@dataclass(frozen=True)
class Relayed:
    status: int
    headers: dict[str, str]
    data: bytes


def relay(method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float) -> Relayed:
    """Send one request on a pooled connection; ``Unreachable`` when it could not be sent or its answer was
    lost (``delivered`` says which), ``TimedOut`` when no answer came in time."""
    try:
        answer = _POOL.request(method, url, body=body, headers=headers, preload_content=True, redirect=False,
                               timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=timeout_s))
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise TimedOut(f"{method} {url}: no answer within {timeout_s:g} s") from exc
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.NewConnectionError) as exc:
        raise Unreachable(f"{method} {url}: {exc}", delivered=False) from exc
    except urllib3.exceptions.HTTPError as exc:  # sent (or partly): the answer was lost
        raise Unreachable(f"{method} {url}: {exc}", delivered=True) from exc
    return Relayed(answer.status, {name: answer.headers[name] for name in PASSED_HEADERS if name in answer.headers},
                   answer.data)
