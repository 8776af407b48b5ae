"""What an address reaches (whether it is this machine only), and how a URL is shown (without its password)."""
from __future__ import annotations

import ipaddress
import socket
import urllib.parse

HIDDEN = "********"


def is_loopback(address: str) -> bool:
    """Whether ``address`` reaches this machine only: a loopback address, or a name every one of whose
    addresses is loopback (so ``127.attacker.example`` is judged by what it resolves to, not its text)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        pass
    try:
        resolved = {info[4][0].split("%")[0] for info in socket.getaddrinfo(address, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(resolved) and all(ipaddress.ip_address(ip).is_loopback for ip in resolved)


def redacted_url(url: str) -> str:
    """``url`` without its password (a camera's URL often carries one), as logs and readers see it."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{HIDDEN}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
