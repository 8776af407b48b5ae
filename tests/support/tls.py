"""An HTTPS server on loopback: an ``HttpRecorder`` behind TLS, with a self-signed certificate for 127.0.0.1
that a client trusts by naming it in ``SSL_CERT_FILE`` (OpenSSL's default CAs: that certificate alone)."""
from __future__ import annotations

import contextlib
import ssl
import subprocess
from pathlib import Path
from typing import Iterator

from tests.support.http_recorder import HttpRecorder


@contextlib.contextmanager
def tls_recorder(directory: Path) -> Iterator[tuple[HttpRecorder, Path]]:
    """The server (its ``url`` still says http://) and its certificate, made in ``directory``."""
    key, certificate = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with HttpRecorder() as server:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        yield server, certificate
