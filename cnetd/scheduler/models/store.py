"""The node's model store: every model a deployment names becomes an artifact known by its SHA-256.

An artifact is either *local* (a file on this node, or a file of data uploaded here: used where it lies,
holding no storage of its own) or *cached* (fetched from a URL into ``<data_path>/models/<sha256>``, its
bytes held against the node's storage in the ledger). Each has a ledger record (type ``model``, id
``model-<sha256>``): what ``GET /api/models`` lists, what the signed artifact links serve.

A fetch is recorded before its first byte: the record (``uploading``, its Content-Length reserved, bytes
received so far in ``config.received_bytes``) exists while the bytes stream into ``models/.partial/``;
they are fsynced, checked against ``model_sha256`` and renamed into place, and the record becomes
``stored``. A fetch that fails leaves neither file nor record; one the scheduler's end interrupted is
settled when it starts again (``settle``). Deployments of one model at once share one fetch. When the
cache would exceed ``models.cache_bytes``, or the node's storage is short, least-recently-used cached
models that no workload uses are evicted first. A workload uses a model from the moment it is prepared or
forwarded with it (``keep``, until ``let_go``), before its record names the model's hash.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pwd
import shutil
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cnetd.common.addresses import shown_urls
from cnetd.common.errors import (CnetError, Conflict, InsufficientResources, InsufficientStorage, NotFound,
                                 Unprocessable, disk_full)
from cnetd.core.model_records import MODEL_TYPE, RECORD_ID_PREFIX, model_users, record_id
from cnetd.core.counters import MODEL_CACHE, MODEL_FETCHED_BYTES
from cnetd.common.model_sources import DATA, FILE, Source
from ledger.catalog import Catalog
from ledger.records import Resources, Status, WorkloadRecord
from ledger.store import Ledger

if TYPE_CHECKING:
    import tarfile

    import requests

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_S = 0.5
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 5.0, 30.0
LOCAL, CACHED = "local", "cached"


@dataclass(frozen=True)
class Artifact:
    sha256: str
    path: str
    size_bytes: int
    source: str
    kind: str  # LOCAL or CACHED
    fetched: bool = False  # this deployment's fetch brought it (so a refusal evicts it again)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """Artifacts of one node. Used by the scheduler only (the ledger's one writer of model records); the
    API reads their records."""

    def __init__(self, ledger: Ledger, data_path: str, db_path: str, cache_bytes: int,
                 workload_user: str | None) -> None:
        self._ledger = ledger
        self._root = Path(data_path) / "models"
        self._partial = self._root / ".partial"
        self._db_path = db_path
        self._cache_bytes = cache_bytes
        self._workload_user = workload_user  # its group reads cached models (the services run as it)
        self._lock = threading.RLock()  # evict holds it while it asks users, which takes it too
        self._kept: dict[str, set[str]] = {}  # sha256 -> workloads prepared or forwarded with it just now
        self._fetches: dict[str, Future[Artifact]] = {}  # by source text: one fetch for concurrent deployments
        self._hashes: dict[tuple[str, int, int, int], str] = {}  # a local file's hash, by path, inode, size, mtime

    # -- what is here ------------------------------------------------------------------------------

    def known(self, sha256: str) -> Artifact | None:
        """The artifact with this hash, if its record is stored and its file still holds it."""
        try:
            record = self._ledger.get(record_id(sha256))
        except NotFound:
            return None
        if record.status != Status.STORED:
            return None
        config = record.config
        try:
            same = os.stat(config["path"]).st_size == config["size_bytes"]
        except OSError:
            same = False
        if not same:
            return None
        return Artifact(sha256, config["path"], config["size_bytes"], config["source"], config["kind"])

    def here(self, source: Source, expected: str | None) -> Artifact | None:
        """The artifact ``source`` names when it is on this node already (a file, data uploaded here, or a
        cached copy of the expected hash); None when it must be fetched."""
        if source.kind == FILE:
            if os.path.isdir(source.text):  # a SavedModel directory, as TF Serving and Triton take one
                return self._packed(source.text, expected)
            return self._local(source.text, source.text, expected)
        if source.kind == DATA:
            path = self._data_file(source)
            return self._local(path, source.text, expected) if path else None
        return self._cached(expected, source.text)

    def _cached(self, expected: str | None, url: str) -> Artifact | None:
        """A cache hit: the artifact of the expected hash, or (none expected) the one fetched from ``url``
        before. A URL without ``model_sha256`` is fetched once: new bytes need a new URL or the hash."""
        sha256 = expected or next((record.config["sha256"] for record in self.models() if record.status == Status.STORED
                                   and record.config["kind"] == CACHED and record.config["source"] == url), None)
        artifact = self.known(sha256) if sha256 else None
        if artifact is not None:
            MODEL_CACHE.labels("hit").inc()
            self.touch(artifact.sha256)
        return artifact

    def _data_file(self, source: Source) -> str | None:
        stored = Catalog(self._db_path).get(source.data_key)
        if stored is None:
            return None
        if not any(file["rel_path"] == source.data_file for file in stored["files"]):
            raise Unprocessable(f"config.model_path: data {source.data_key} has no file {source.data_file!r}")
        return str(Path(stored["path"]) / source.data_file)  # an upload's files lie under its folder

    def _local(self, path: str, source: str, expected: str | None) -> Artifact:
        if not os.path.isfile(path):
            raise Unprocessable(f"config.model_path: model file {source!r} does not exist on this node")
        sha256 = self._hash_of(path)
        if expected is not None and sha256 != expected:
            raise Unprocessable(f"config.model_path: {source} has sha256 {sha256}, not model_sha256 {expected}",
                                artifact=source)
        known = self.known(sha256)
        if known is not None and known.kind == CACHED:
            return known  # the same bytes are cached already: one copy serves both
        artifact = Artifact(sha256, os.path.realpath(path), os.path.getsize(path), source, LOCAL)
        self._put_record(artifact, Status.STORED)
        return artifact

    def _packed(self, folder: str, expected: str | None) -> Artifact:
        """A model directory packed as a tar (entries sorted, times and owners zeroed: the same files give the
        same bytes) into the cache, holding its size; packed again only when a file in it changed."""
        key = _folder_key(folder)
        sha256 = self._hashes.get(key)
        known = self.known(sha256) if sha256 else None
        if known is None:
            self._partial.mkdir(parents=True, exist_ok=True)
            partial = self._partial / f"{uuid.uuid4().hex}.tar"
            try:
                size = _pack(Path(folder), partial, self._cache_bytes)
                sha256 = file_sha256(str(partial))
                self._hashes[key] = sha256
                known = self.known(sha256)
                if known is None:
                    artifact = Artifact(sha256, str(self._root / sha256), size, folder, CACHED, fetched=True)
                    self._group_readable(partial)
                    os.replace(partial, artifact.path)
                    try:
                        self._put_record(artifact, Status.STORED)
                    except CnetError:
                        Path(artifact.path).unlink(missing_ok=True)
                        raise
                    known = artifact
            finally:
                partial.unlink(missing_ok=True)
        if expected is not None and known.sha256 != expected:
            raise Unprocessable(f"config.model_sha256: {folder} packs to sha256 {known.sha256}, not {expected}",
                                artifact=folder)
        self.touch(known.sha256)
        return known

    def _hash_of(self, path: str) -> str:
        """A local file's SHA-256, read again only when the file changed (as git's index does)."""
        info = os.stat(path)
        key = (os.path.realpath(path), info.st_ino, info.st_size, info.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]

    # -- fetching ----------------------------------------------------------------------------------

    def fetch(self, url: str, expected: str | None, label: str,
              headers_of: Callable[[str], dict[str, str]] = lambda _: {}, from_neighbour: bool = False) -> Artifact:
        """Bring the artifact at ``url`` into the cache (or join the fetch already under way); in a pool
        thread. ``label`` names it in errors and in the cache (the config's source, not a signed link);
        ``headers_of(url)`` gives the request's headers (a token, a signature made at the time of sending).
        A fetch ``from_neighbour`` (a node of the cluster) goes to it directly; any other follows the proxy
        the environment names, as downloads from outside the cluster must where a site has one."""
        with self._lock:
            hit = self._cached(expected, label)
            if hit is not None:
                return hit
            future = self._fetches.get(url)
            leader = future is None
            if leader:
                future = self._fetches[url] = Future()
        if not leader:
            artifact = future.result()
            if expected is not None and artifact.sha256 != expected:
                raise Unprocessable(f"config.model_sha256: {label} has sha256 {artifact.sha256}, not {expected}",
                                    artifact=label)
            return dataclasses.replace(artifact, fetched=False)
        try:
            artifact = self._fetch(url, expected, label, headers_of(url), from_neighbour)
            future.set_result(artifact)
            return artifact
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._fetches[url]

    def _fetch(self, url: str, expected: str | None, label: str, headers: dict[str, str],
               from_neighbour: bool) -> Artifact:
        with _get(url, headers, label, from_neighbour) as answer:
            if answer.status_code != 200:
                raise Unprocessable(f"config.model_path: {label} answered HTTP {answer.status_code}",
                                    artifact=label)
            length = answer.headers.get("Content-Length")
            if length is None or not (length.isascii() and length.isdigit()):
                raise Unprocessable(f"config.model_path: {label} sends no Content-Length (the cache reserves "
                                    "a model's size before its first byte)", artifact=label)
            size = int(length)
            pending = WorkloadRecord(id=f"{RECORD_ID_PREFIX}fetch-{uuid.uuid4().hex}", type=MODEL_TYPE, name=label,
                                     config={"source": label, "size_bytes": size, "received_bytes": 0},
                                     requirements=Resources(storage=size), status=Status.UPLOADING)
            self._reserve(pending, label)
            try:
                return self._receive(answer, pending, label, expected)
            finally:
                with contextlib.suppress(NotFound):
                    self._ledger.remove(pending.id)

    def _reserve(self, pending: WorkloadRecord, label: str) -> None:
        """Admit ``pending`` with its size, evicting unused cached models first when the cache or the
        node's storage is short; InsufficientResources naming the artifact when even that is not enough."""
        size = pending.requirements.storage
        if size > self._cache_bytes:
            raise InsufficientResources(f"{label} is {size} bytes, more than models.cache_bytes "
                                        f"({self._cache_bytes})", artifact=label)
        if not self._evict_for(size):
            users = sorted({user for record in self.models() for user in self.users(record.config.get("sha256", ""))})
            raise InsufficientResources(f"no room to cache {label} ({size} bytes): models.cache_bytes "
                                        f"({self._cache_bytes}) is held by models in use (by {', '.join(users)})",
                                        artifact=label)
        try:
            self._ledger.admit(pending)
        except InsufficientResources as exc:
            raise InsufficientResources(f"no room to cache {label} ({size} bytes): {exc.message}", artifact=label,
                                        **exc.details) from None

    def _receive(self, answer: requests.Response, pending: WorkloadRecord, label: str, expected: str | None) -> Artifact:
        import requests
        self._partial.mkdir(parents=True, exist_ok=True)
        partial = self._partial / pending.id
        digest, received, reported = hashlib.sha256(), 0, time.monotonic()
        try:
            with open(partial, "xb") as handle:
                for chunk in answer.iter_content(CHUNK_BYTES):
                    received += len(chunk)
                    if received > pending.requirements.storage:
                        raise Unprocessable(f"config.model_path: {label} sent more than its Content-Length",
                                            artifact=label)
                    handle.write(chunk)
                    digest.update(chunk)
                    if time.monotonic() - reported >= PROGRESS_EVERY_S:
                        reported = time.monotonic()
                        self._progress(pending.id, received)
                handle.flush()
                os.fsync(handle.fileno())
            if received != pending.requirements.storage:
                raise Unprocessable(f"config.model_path: {label} ended after {received} of "
                                    f"{pending.requirements.storage} bytes", artifact=label)
            sha256 = digest.hexdigest()
            if expected is not None and sha256 != expected:
                raise Unprocessable(f"config.model_sha256: {label} has sha256 {sha256}, not {expected}",
                                    artifact=label)
            artifact = Artifact(sha256, str(self._root / sha256), received, label, CACHED, fetched=True)
            held = self.known(sha256)  # the same bytes, brought by another URL or held as a local file
            if held is None:
                self._group_readable(partial)
                os.replace(partial, artifact.path)
                self._fsync_dir(self._root)
                self._ledger.remove(pending.id)  # its reservation becomes the artifact's
                try:
                    self._put_record(artifact, Status.STORED)
                except CnetError:
                    Path(artifact.path).unlink(missing_ok=True)
                    raise
            else:
                artifact = dataclasses.replace(held, fetched=False)
        except requests.RequestException as exc:  # an OSError too: first
            raise Unprocessable(f"config.model_path: fetching {label} failed: {_reason(exc)}", artifact=label) from None
        except OSError as exc:
            if disk_full(exc):  # the cache's disk filled up with other files: its storage ledger had room
                raise InsufficientStorage(f"the model cache could not store {label}: its disk is full "
                                          f"({os.strerror(exc.errno)})", artifact=label) from None
            raise
        finally:
            partial.unlink(missing_ok=True)
        MODEL_CACHE.labels("fetched").inc()
        MODEL_FETCHED_BYTES.inc(received)
        return artifact

    def _progress(self, pending_id: str, received: int) -> None:
        self._ledger.update(pending_id, lambda record: dataclasses.replace(
            record, config={**record.config, "received_bytes": received}))

    def _group_readable(self, path: Path) -> None:
        if self._workload_user is not None:
            os.chown(path, -1, pwd.getpwnam(self._workload_user).pw_gid)
        os.chmod(path, 0o640)

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # -- records, use and eviction ---------------------------------------------------------------

    def _put_record(self, artifact: Artifact, status: str) -> None:
        """The artifact's record (admitted with its storage when cached; replaced when it changes)."""
        record = WorkloadRecord(id=record_id(artifact.sha256), type=MODEL_TYPE, name=Path(artifact.source).name,
                                config={"sha256": artifact.sha256, "path": artifact.path, "source": artifact.source,
                                        "size_bytes": artifact.size_bytes, "received_bytes": artifact.size_bytes,
                                        "kind": artifact.kind, "last_used": time.time()},
                                requirements=Resources(storage=artifact.size_bytes if artifact.kind == CACHED else 0),
                                status=status)
        with self._lock:
            try:
                current = self._ledger.get(record.id)
            except NotFound:
                current = None
            if current is not None and current.status == status and all(
                    current.config.get(name) == record.config[name] for name in ("path", "size_bytes", "kind")):
                self.touch(artifact.sha256)
                return
            if current is not None:
                self._ledger.remove(record.id)  # the file it named moved or changed
            self._ledger.admit(record)

    def touch(self, sha256: str) -> None:
        """It was used just now (least-recently-used models are evicted first)."""
        try:
            self._ledger.update(record_id(sha256), lambda record: dataclasses.replace(
                record, config={**record.config, "last_used": time.time()}))
        except NotFound:
            pass

    def keep(self, artifact: Artifact, workload_id: str) -> bool:
        """``artifact`` is used by ``workload_id`` from now on (nothing evicts it) until ``let_go``, though its
        record does not name it yet; False when an eviction came first (``evict`` removes the record under the
        same lock, so a record found here stays)."""
        with self._lock:
            try:
                self._ledger.get(record_id(artifact.sha256))
            except NotFound:
                return False
            self._kept.setdefault(artifact.sha256, set()).add(workload_id)
        return True

    def let_go(self, workload_id: str) -> None:
        """What ``keep`` kept for ``workload_id``: its record names it now, or it was not prepared."""
        with self._lock:
            for sha256 in [sha256 for sha256, holders in self._kept.items() if workload_id in holders]:
                self._kept[sha256].discard(workload_id)
                if not self._kept[sha256]:
                    del self._kept[sha256]

    def users(self, sha256: str, besides: str | None = None) -> list[str]:
        """The workloads that use the model (``besides`` that one): those whose records name it, and those it is
        kept for."""
        with self._lock:
            kept = set(self._kept.get(sha256, ()))
        # Only the records whose stored config names the hash are made (3 ms, not 20, with 2,000 records).
        recorded = model_users(self._ledger.workloads(where=lambda stored: stored["config"].get("model_sha256")
                                                       == sha256), sha256)
        return [user for user in [*recorded, *sorted(kept - set(recorded))] if user != besides]

    def models(self) -> list[WorkloadRecord]:
        """The model records: the range of ids they share, not a scan of every record (20 ms with 2,000)."""
        return [record for record in self._ledger.workloads(id_prefix=RECORD_ID_PREFIX) if record.type == MODEL_TYPE]

    def evict(self, sha256: str, besides: str | None = None) -> dict[str, Any]:
        """Forget one artifact (and delete its cached file); Conflict while a workload (``besides`` that one)
        uses it."""
        with self._lock:  # no keep between the question and the removal
            record = self._ledger.get(record_id(sha256))
            users = self.users(sha256, besides)
            if users:
                raise Conflict(f"model {sha256} is used by {', '.join(users)}: delete those first", users=users)
            self._ledger.remove(record.id)
            if record.config["kind"] == CACHED:
                Path(record.config["path"]).unlink(missing_ok=True)
        log.info("evicted model %s (%s, %d bytes)", sha256, record.config["source"], record.config["size_bytes"])
        return {"sha256": sha256, "evicted": True}

    def forget_unused_in(self, folder: str) -> None:
        """The records of the local models whose file lay in ``folder`` (data deleted) and that no workload uses.
        A fetch under way (its record has no kind or path yet) is none of them."""
        inside = os.path.join(os.path.realpath(folder), "")
        with self._lock:
            for record in self.models():
                if record.config.get("kind") == LOCAL and record.config["path"].startswith(inside):
                    with contextlib.suppress(Conflict):
                        self.evict(record.config["sha256"])

    def _evict_for(self, size: int) -> bool:
        """Evict unused cached models, least recently used first, until ``size`` more bytes fit in the cache
        and in the node's free storage; whether they fit in the cache (the ledger says if storage does)."""
        cached = sorted((record for record in self.models()
                         if record.status == Status.STORED and record.config["kind"] == CACHED),
                        key=lambda record: record.config["last_used"])
        held = sum(record.requirements.storage for record in self.models())
        for record in cached:
            if held + size <= self._cache_bytes and self._ledger.usage().available.storage >= size:
                return True
            try:
                self.evict(record.config["sha256"])
            except Conflict:  # in use (evict decides, at the moment it would remove it)
                continue
            held -= record.requirements.storage
        return held + size <= self._cache_bytes

    def undo_fetch(self, artifact: Artifact, refusal: CnetError, refused: str) -> None:
        """A deployment refused after its own fetch brought the model: the model goes again, unless used by
        another workload than ``refused`` (the refused one, whose record may still name the model's hash, as a
        forwarded deployment's and its pointer's do)."""
        if not artifact.fetched:
            return
        try:
            self.evict(artifact.sha256, besides=refused)
        except Conflict:
            return  # another workload uses it
        log.info("evicted %s again: %s", artifact.source, refusal.message)

    def settle(self) -> None:
        """After a restart: fetches the scheduler's end interrupted leave nothing (record and partial file)."""
        for record in self.models():
            if record.status == Status.UPLOADING:
                self._ledger.remove(record.id)
                log.info("removed the interrupted fetch of %s", record.config.get("source"))
        shutil.rmtree(self._partial, ignore_errors=True)



def _folder_key(folder: str) -> tuple[str, int, int, int]:
    """What changes when any file of a model directory does: its path, and its files' count, bytes and latest
    change."""
    files = [entry for entry in Path(folder).rglob("*") if entry.is_file()]
    infos = [entry.stat() for entry in files]
    return (os.path.realpath(folder), len(files), sum(info.st_size for info in infos),
            max((info.st_mtime_ns for info in infos), default=0))


def _pack(folder: Path, into: Path, most_bytes: int) -> int:
    """Tar ``folder``'s files (sorted, times and owners zeroed) into ``into``; its size. A folder larger than
    the cache may hold is refused."""
    import tarfile  # here: only a model directory is packed, and an idle scheduler is 0.3 MiB smaller without it

    def normalized(member: tarfile.TarInfo) -> tarfile.TarInfo:
        member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
        member.mode = 0o755 if member.isdir() else 0o644
        return member
    entries = sorted(folder.rglob("*"))
    total = sum(entry.stat().st_size for entry in entries if entry.is_file())
    if total > most_bytes:
        raise Unprocessable(f"config.model_path: {folder} holds {total} bytes, more than the model cache's "
                            f"{most_bytes} (models.cache_bytes)", artifact=str(folder))
    with tarfile.open(into, "w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            if entry.is_symlink():
                raise Unprocessable(f"config.model_path: {entry} is a link: a model directory holds files only",
                                    artifact=str(folder))
            archive.add(entry, arcname=str(entry.relative_to(folder)), recursive=False, filter=normalized)
    return into.stat().st_size


def _get(url: str, headers: dict[str, str], label: str, from_neighbour: bool) -> requests.Response:
    """The streamed answer to a GET of ``url``. Only a fetch from outside the cluster reads the environment (its
    proxy, netrc): a neighbour is reached straight. Its session closes here, as ``requests.get``'s does."""
    import requests  # here: an idle node's scheduler is about 6 MiB smaller without it
    with requests.Session() as session:
        session.trust_env = not from_neighbour
        try:
            return session.get(url, stream=True, headers=headers, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except requests.RequestException as exc:
            raise Unprocessable(f"config.model_path: {label} could not be fetched: {_reason(exc)}",
                                artifact=label) from None


def _reason(exc: requests.RequestException) -> str:
    """Why a fetch failed, as requests says it, with any URL it quotes shown as a source is (urllib3 quotes the
    whole URL, password and signing query included, when it cannot parse it)."""
    text = shown_urls(str(exc))
    return text if len(text) < 300 else text[:300] + "…"
