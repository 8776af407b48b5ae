"""The node's daemons (register, scheduler, monitor) start without OpenSSL (``cnetd.common.http_without_tls``),
and still reach an https neighbour, with its certificate checked, loading ssl on that first call. Each case
runs in a fresh interpreter: what this one has imported already is beside the point."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.fresh_python import fresh_python
from tests.support.http_recorder import HttpRecorder
from tests.support.tls import tls_recorder

WITHOUT_TLS = "from cnetd.common.http_without_tls import load_http_client_without_tls; load_http_client_without_tls()\n"


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return fresh_python(WITHOUT_TLS + code, **env)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HttpRecorder, Path]]:
    with tls_recorder(tmp_path) as served:
        yield served


def test_the_daemons_modules_load_without_ssl() -> None:
    """Control: without ``load_http_client_without_tls`` first, ``http.client`` brings ssl into each."""
    modules = "cnetd.register.heartbeats, cnetd.scheduler.scheduler, cnetd.monitor.health, cnetd.monitor.settling"
    checked = _python(f"import sys, {modules}\nprint('ssl' in sys.modules)")
    assert checked.stdout.strip() == "False", checked.stderr


def test_an_https_neighbour_is_reached_with_its_certificate_checked(tls_server: tuple[HttpRecorder, Path]) -> None:
    server, certificate = tls_server
    url = server.url.replace("http://", "https://") + "/api/health"
    code = ("import sys, http.client\nfrom cnetd.common.httpclient import call\n"
            "assert not hasattr(http.client, 'HTTPSConnection') and 'ssl' not in sys.modules\n"
            f"print(call('GET', {url!r}))\n")
    trusted = _python(code, SSL_CERT_FILE=str(certificate))  # OpenSSL's default CAs: this certificate alone
    assert trusted.stdout.strip() == "(200, {'status': 'ok'})", trusted.stderr
    untrusted = _python(code, SSL_CERT_FILE="/nonexistent")
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr and untrusted.returncode != 0
    assert server.seen == [("/api/health", None)]  # the untrusted call sent nothing
