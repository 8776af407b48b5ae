"""What an address reaches (whether it is this machine only), and how a URL is shown (without its password, and
without its query where that may sign it, or its path where that is its secret)."""
from __future__ import annotations

import ipaddress
import re
import socket

HIDDEN = "********"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"  # RFC 3986's scheme, and its //
_URL_IN_TEXT = re.compile(_SCHEME + r"""[^\s'"]+""")
_USERINFO = re.compile(rf"^(?P<scheme>{_SCHEME})(?P<userinfo>[^/?#]*)@")  # to the authority's last @
_ORIGIN = re.compile(rf"^{_SCHEME}[^/?#]*")  # the scheme and authority


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
    """``url`` without its password (a camera's URL often carries one), as logs and readers see it. Read as
    RFC 3986 reads the authority (who is before its last ``@``) rather than by urllib, which raises on a port that
    is no number and on an unclosed IPv6 bracket: any text is shown, never an error."""
    match = _USERINFO.match(url)
    if match is None or ":" not in match["userinfo"]:
        return url
    user = match["userinfo"].split(":", 1)[0]
    return f"{match['scheme']}{user}:{HIDDEN}@{url[match.end():]}"


def shown_url(url: str) -> str:
    """``url`` without its password, and without its query, which may sign it (a neighbour's artifact link, a
    presigned S3 URL) and so let anyone holding it fetch what it names."""
    base, question, _ = redacted_url(url).partition("?")
    return f"{base}?{HIDDEN}" if question else base


FILE_SOURCES = ("data://", "/")  # a stream source that is a file: data://DATA_KEY/FILE, or its absolute path


def shown_source(source: str) -> str:
    """A stream's source as readers see it: a camera's URL as ``shown_url`` shows it; a file whole, since a
    ``?`` in a file's name starts no query."""
    return source if source.startswith(FILE_SOURCES) else shown_url(source)


def shown_origin(url: str) -> str:
    """``url`` as its origin (its password hidden), and its path and query as one ``HIDDEN``: a webhook's path is
    often its only secret (a Slack, Discord or Teams hook's token), so a reader learns where it posts, not how."""
    shown = redacted_url(url)
    origin = _ORIGIN.match(shown)
    if origin is None or shown[origin.end():] in ("", "/"):
        return shown
    return f"{origin[0]}/{HIDDEN}"


def shown_urls(text: str) -> str:
    """``text`` (an error's message, which may quote the URL it failed on) with every URL in it shown."""
    return _URL_IN_TEXT.sub(lambda found: shown_url(found[0]), text)
