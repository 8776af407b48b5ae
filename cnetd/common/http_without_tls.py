"""Load ``http.client`` without starting OpenSSL: for the node's daemons (register, scheduler, monitor), which
speak TLS only to a neighbour whose URL is https, if ever, and for supervisord (``cnetd.launcher.supervisord``),
which never does.

``http.client`` imports ``ssl`` as it is first imported, to define ``HTTPSConnection``, and ``ssl`` starts
OpenSSL's TLS library: 1.6 MiB of a bare interpreter (6.3 against 7.9 MiB anonymous after ``import
http.client``), and 0.7 MiB of each of these processes' PSS, which load libcrypto anyway for hashlib
(``bench/idle_memory.py``: 104.4 → 102.2 MiB for the three daemons). Imported here first, with ``ssl``
hidden for that moment, ``http.client`` lacks that one class, and ``cnetd.common.httpclient`` opens its TLS
connections itself, importing ``ssl`` on first use."""
from __future__ import annotations

import sys


def load_http_client_without_tls() -> None:
    """Call it before anything imports ``http.client`` (a program's first lines); later it changes nothing."""
    if "http.client" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # ``import ssl`` raises ImportError meanwhile
    try:
        import http.client  # noqa: F401
    finally:
        del sys.modules["ssl"]
