"""The node as the command line sees it: JSON over HTTP with the bearer token, every refusal one exception
carrying the node's own message."""
from __future__ import annotations

import ipaddress
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import requests
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

DEFAULT_ADDR = "http://127.0.0.1:8080"
TIMEOUT_S = 120  # a submission waits for its service to be ready
RECONNECT_S = 0.5
LIST_PAGE = 500  # workloads in one answer of a listing (kubectl's --chunk-size)


def _server_sent_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(id, data) of each event in a text/event-stream; comments and retry lines skipped."""
    event_id, data = None, []
    for line in lines:
        if line == "":
            if data:
                yield event_id, "\n".join(data)
            event_id, data = None, []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("id:"):
            event_id = line[3:].strip()


class Refused(Exception):
    """The node said no (its message, and the HTTP status it answered), or could not be reached (no status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _passed_over(refused: Any) -> list[str]:
    """A refusal's nodes, one line each: which node, and why it did not take the workload."""
    if not isinstance(refused, list):
        return []
    return [f"\n  {entry.get('node_id', '?')}: {entry.get('kind', '?')}: {entry.get('message', '')}"
            for entry in refused if isinstance(entry, dict)]


def _on_this_machine(host: str) -> bool:
    """Whether ``host`` is this machine by its text (localhost, a loopback address), resolving nothing: such a
    node is reached straight, past the proxy the shell may name, as curl and Go's clients do. Any other goes
    through the proxy where the environment names one (which may be the only way to resolve it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NodeClient:
    def __init__(self, addr: str, token: str | None) -> None:
        self.addr = addr.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = not _on_this_machine(urllib.parse.urlsplit(self.addr).hostname or "")
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            answer = self.http.request(method, self.addr + path, timeout=kwargs.pop("timeout", TIMEOUT_S), **kwargs)
        except requests.RequestException as exc:
            raise Refused(f"cannot reach the node at {self.addr}: {exc}") from None
        if answer.status_code >= 400:
            try:
                body = answer.json()
                message = f"{body.get('error', answer.status_code)}: {body.get('message', answer.text)}"
            except ValueError:
                message = f"{answer.status_code}: {answer.text.strip()[:500]}"
            else:
                message += "".join(_passed_over(body.get("refused")))
            raise Refused(message, answer.status_code)
        return answer

    def workload_id(self, ref: str) -> str:
        """The id of the workload ``ref`` names, read as docker and nomad read one: its id; else its name, or the
        start of its id, when exactly one of the node's workloads has it (several: refused, naming them)."""
        try:
            return self.get(f"/api/workloads/{urllib.parse.quote(ref, safe='')}")["id"]
        except Refused as refused:
            if refused.status != 404:
                raise
            not_found = refused
        listed = self.workloads()
        for matches in ([view for view in listed if view["name"] == ref],
                        [view for view in listed if view["id"].startswith(ref)]):
            if len(matches) == 1:
                return matches[0]["id"]
            if matches:
                named = ", ".join(f"{view['id']} {view['name']}" for view in matches)
                raise Refused(f"{ref!r} names {len(matches)} workloads ({named}): give its id")
        raise not_found

    def pages(self, path: str, limit: int, after: str | None = None) -> Iterator[dict[str, Any]]:
        """Each page of a listing (``limit`` a page, from ``after``), following its ``next`` until there is none.
        A node of the last version that pages nothing gives one answer, without next: that is all."""
        while True:
            page = self.get(path, limit=limit, **({"after": after} if after else {}))
            yield page
            after = page.get("next")
            if not after:
                return

    def workloads(self) -> list[dict[str, Any]]:
        """Every workload the node lists, read a page at a time, as kubectl reads a list: each answer bounded
        however many there are."""
        return [view for page in self.pages("/api/workloads", LIST_PAGE) for view in page["workloads"]]

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, json=body).json()

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, json=body).json()

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path).json()

    def predict(self, workload_id: str, image: bytes, content_type: str, params: dict[str, Any]) -> Any:
        return self.call("POST", f"/api/workloads/{workload_id}/predict", data=image, params=params,
                         headers={"Content-Type": content_type}).json()

    def events(self, workload_id: str, last: int, follow: bool) -> Iterator[dict[str, Any]]:
        """A stream's events (Server-Sent Events): the last ``last`` kept, then, with ``follow``, each as it comes,
        reconnecting after the last one seen whenever the node ends the connection."""
        seen: str | None = None
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": seen} if seen else {})}
            answer = self.call("GET", f"/api/workloads/{workload_id}/events", stream=True, headers=headers,
                               params={"last": last, "follow": str(follow).lower()}, timeout=(10, 60))
            with answer:
                for event_id, data in _server_sent_events(answer.iter_lines(decode_unicode=True)):
                    seen = event_id or seen
                    yield json.loads(data)
            if not follow:
                return
            time.sleep(RECONNECT_S)

    def upload(self, path: Path, on_progress: Callable[[int, int], None]) -> Any:
        """Upload a file or a directory (its relative paths kept) as one data workload, streamed from disk;
        ``on_progress(sent, total)`` as bytes go."""
        files = [path] if path.is_file() else sorted(item for item in path.rglob("*") if item.is_file())
        if not files:
            raise Refused(f"{path}: no files to upload")
        base = path.parent
        handles = [open(item, "rb") for item in files]
        try:
            fields = [("type", "data"), ("name", path.name),
                      *(("file", (str(item.relative_to(base)) if path.is_dir() else item.name, handle,
                                  "application/octet-stream")) for item, handle in zip(files, handles))]
            encoder = MultipartEncoder(fields=fields)
            monitor = MultipartEncoderMonitor(encoder, lambda m: on_progress(m.bytes_read, m.len))
            return self.call("POST", "/api/workloads", data=monitor, timeout=None,
                             headers={"Content-Type": monitor.content_type}).json()
        finally:
            for handle in handles:
                handle.close()

