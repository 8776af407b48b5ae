"""What a model deployment needs of the model store, for the scheduler: the artifact a config names (here
already, or fetched in a pool thread), the config the service then runs with, and the config a delegated
deployment is forwarded with (naming the artifact by its hash and a signed link to this node, which fetches
data a neighbour holds first: it carries the model across its hop)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from cnetd.common.addresses import redacted_url
from cnetd.common.errors import CnetError, Unavailable, Unprocessable
from cnetd.common.httpclient import Unreachable, TimedOut, call
from cnetd.common.protocol import protocol_headers
from cnetd.core.links import is_artifact_link, signed_link
from cnetd.core.s3 import S3Endpoint
from cnetd.common.model_sources import DATA, FILE, HTTP, S3, Source, parse_source
from cnetd.scheduler.models.store import Artifact, ModelStore

NEIGHBOUR_TIMEOUT_S = 5.0
KEEP_TRIES = 2  # a model evicted between its lookup and its keep is brought again, once
log = logging.getLogger("scheduler")


@dataclass(frozen=True)
class Forwarded:
    """The config a delegated deployment goes with, the artifact fetched here to carry it (let go again when no
    node takes it), or why data a neighbour may hold could not be carried."""

    config: dict[str, Any]
    carried: Artifact | None = None
    not_carried: CnetError | None = None


class ModelDeployments:
    def __init__(self, store: ModelStore, api_url: str, token: str | None, headers: dict[str, str],
                 neighbour_urls: Callable[[], list[str]], s3: S3Endpoint | None) -> None:
        self._store = store
        self._s3 = s3  # where s3:// sources are (models.s3_endpoint), if anywhere
        self._api_url = api_url
        self._token = token
        self._headers = headers  # this node's token, for its neighbours' APIs
        self._neighbour_urls = neighbour_urls

    def artifact_here(self, config: dict[str, Any]) -> Artifact | None:
        """The artifact the config names, when this node has it (a file, data here, a cached copy)."""
        return self._store.here(parse_source(config["model_path"]), config.get("model_sha256"))

    def kept_artifact(self, config: dict[str, Any], workload_id: str, fetched: list[Artifact]) -> Artifact:
        """The artifact the config names, here or fetched (then added to ``fetched``; slow: in a pool thread),
        kept from eviction for ``workload_id`` until ``let_go``: a deployment prepared with it uses it before its
        record names it."""
        for _ in range(KEEP_TRIES):
            artifact = self.artifact_here(config)
            brought = artifact is None
            if brought:
                artifact = self.fetch(config)
            if self._store.keep(artifact, workload_id):
                if brought:
                    fetched.append(artifact)
                return artifact
        raise Unavailable(f"config.model_path: {parse_source(config['model_path']).shown} was evicted from this "
                          "node's cache each time it came, to make room for other models: try again")

    def let_go(self, workload_id: str) -> None:
        """What ``kept_artifact`` or ``forwarded`` kept for ``workload_id``: its record names it now, or it
        went no further."""
        self._store.let_go(workload_id)

    def fetch(self, config: dict[str, Any]) -> Artifact:
        """Fetch what the config names into the cache (slow: in a pool thread)."""
        source, expected = parse_source(config["model_path"]), config.get("model_sha256")
        if source.kind == FILE:
            raise Unprocessable(f"config.model_path: model file {source.text!r} does not exist on this node")
        if source.kind == DATA:
            url, sha256 = self._find_data(source)
            if expected is not None and sha256 != expected:
                raise Unprocessable(f"config.model_sha256: {source.text} has sha256 {sha256}, not {expected}",
                                    artifact=source.text)
            return self._store.fetch(url, sha256, source.text, headers_of=lambda _: self._headers,
                                     from_neighbour=True)
        if source.kind == S3:
            if self._s3 is None:
                raise Unprocessable(f"config.model_path: {source.text}: this node has no models.s3_endpoint",
                                    artifact=source.text)
            url = self._s3.object_url(source.text)
            return self._store.fetch(url, expected, source.text, headers_of=self._s3.headers)
        # A neighbour's signed artifact link is a node-to-node request: it says its protocol, as every one does.
        neighbours_link = is_artifact_link(source.text)
        return self._store.fetch(source.text, expected, redacted_url(source.text.split("?", 1)[0]),
                                 headers_of=lambda _: protocol_headers() if neighbours_link else {},
                                 from_neighbour=neighbours_link)

    def _find_data(self, source: Source) -> tuple[str, str]:
        """Where a neighbour serves the data file ``source`` names, and its hash. Not found: 422, or 503 naming the
        neighbours that could not be asked (one of them may hold it: trying again may find it)."""
        unasked = []
        for api_url in self._neighbour_urls():
            try:
                status, stored = call("GET", f"{api_url}/api/data/{source.data_key}", headers=self._headers,
                                      timeout_s=NEIGHBOUR_TIMEOUT_S)
            except (Unreachable, TimedOut) as exc:
                unasked.append(str(exc))
                continue
            if status != 200 or not isinstance(stored, dict):
                continue
            for file in stored.get("files", []):
                if file.get("rel_path") == source.data_file:
                    return f"{api_url}/api/artifacts/{file['sha256']}", file["sha256"]
        missing = f"config.model_path: no data {source.data_key} with {source.data_file!r} on this node or its " \
                  "neighbours"
        if unasked:
            raise Unavailable(f"{missing} that could be asked; not asked: {', '.join(unasked)}", artifact=source.text)
        raise Unprocessable(missing, artifact=source.text)

    @staticmethod
    def running_config(config: dict[str, Any], artifact: Artifact) -> dict[str, Any]:
        """The config as the service runs it: the model's hash, and the file this node holds it in."""
        return {**config, "model_sha256": artifact.sha256, "model_file": artifact.path}

    def forwarded(self, config: dict[str, Any], workload_id: str) -> Forwarded:
        """What a delegated deployment travels with. A model only this node has (a file, data here) is named by
        its hash and a signed link to this node's /api/artifacts. So is data a neighbour of this node holds: it
        is fetched here first (``carried``), since the node the deployment goes to may not reach that neighbour
        (it asks its own neighbours only when this fails: ``not_carried`` says why). The artifact is kept for
        ``workload_id`` (``let_go`` once the forward is answered); evicted before that, it goes as given. Any other
        source goes as given."""
        source = parse_source(config["model_path"])
        if source.kind in (HTTP, S3):
            return Forwarded(config)
        try:
            artifact = self._store.here(source, config.get("model_sha256"))
        except Unprocessable:
            if source.kind == FILE:
                return Forwarded(config)  # not here: the node that takes it may have it at that path
            raise
        carried = None
        if artifact is None:
            try:
                artifact = carried = self.fetch(config)
            except CnetError as exc:
                log.info("not carrying %s across this hop (%s): the node that takes it asks its own neighbours",
                         source.text, exc.message)
                return Forwarded(config, not_carried=exc)
        if not self._store.keep(artifact, workload_id):
            return Forwarded(config)
        return Forwarded({**config, "model_path": signed_link(self._api_url, self._token, artifact.sha256),
                          "model_sha256": artifact.sha256}, carried)
