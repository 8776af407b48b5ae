"""A node's own HTTP (to its neighbours, its services, itself) never goes through the proxy the environment
names; downloads from outside the cluster still do. Sent to a site's proxy, node-to-node calls fail (the
proxy cannot reach 127.0.0.1 or the cluster's addresses) and hand the cluster's token to the proxy."""
from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from cnetd.common.httpclient import call, node_headers
from cnetd.scheduler.models.store import ModelStore
from tests.support.http_recorder import PROXY_VARIABLES, HttpRecorder
from tests.support.ledgers import unit_ledger

BODY = b'{"status": "ok"}'
TOKEN = "cluster-secret"
NodeAndProxy = tuple[HttpRecorder, HttpRecorder]


@pytest.fixture
def node_and_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeAndProxy]:
    """A server standing for a node, and one standing for the site's proxy that every proxy variable names
    (it answers too, as a proxy that reaches the address would)."""
    with HttpRecorder(body=BODY) as node, HttpRecorder(body=BODY) as proxy:
        for variable in PROXY_VARIABLES:
            monkeypatch.setenv(variable, proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        yield node, proxy


def test_a_node_call_goes_straight_to_the_node(node_and_proxy: NodeAndProxy) -> None:
    node, proxy = node_and_proxy
    assert call("GET", f"{node.url}/api/health", headers=node_headers(TOKEN)) == (200, {"status": "ok"})
    assert node.seen == [("/api/health", f"Bearer {TOKEN}")]
    assert proxy.seen == []


def test_control_urllib_sends_the_call_and_its_token_to_the_proxy(node_and_proxy: NodeAndProxy) -> None:
    """What the node's calls did before (urllib.request): the recorder sees proxied requests."""
    node, proxy = node_and_proxy
    request = urllib.request.Request(f"{node.url}/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    assert proxy.seen == [(f"{node.url}/api/health", f"Bearer {TOKEN}")]
    assert node.seen == []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ModelStore]:
    with unit_ledger(tmp_path / "ledger") as ledger:
        yield ModelStore(ledger, str(tmp_path / "data"), str(tmp_path / "catalog.db"), 1 << 20, None)


def test_a_neighbours_model_comes_straight_from_it(node_and_proxy: NodeAndProxy,
                                                    store: ModelStore) -> None:
    node, proxy = node_and_proxy
    artifact = store.fetch(f"{node.url}/api/artifacts/abc", None, "data://abc/model.onnx",
                           headers_of=lambda _: node_headers(TOKEN), from_neighbour=True)
    assert Path(artifact.path).read_bytes() == BODY
    assert node.seen == [("/api/artifacts/abc", f"Bearer {TOKEN}")]
    assert proxy.seen == []


def test_a_model_from_outside_the_cluster_comes_through_the_proxy(node_and_proxy: NodeAndProxy,
                                                                  store: ModelStore) -> None:
    """A site whose machines reach the internet only through its proxy can still deploy a model by URL."""
    node, proxy = node_and_proxy
    outside = "http://models.example.invalid/yolo.onnx"
    artifact = store.fetch(outside, None, outside)
    assert Path(artifact.path).read_bytes() == BODY
    assert proxy.seen == [(outside, None)]
    assert node.seen == []
