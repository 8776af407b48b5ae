"""What a node offers placement besides its resources: the features its executors find here (workload types,
model runtimes, a container engine) and its labels. The launcher records them at start, the register again
and again; the scheduler reads them here, neighbours in the heartbeat."""
from __future__ import annotations

from typing import Any

from cnetd.core.config import NodeConfig
from workers.registry import node_features


def capabilities(config: NodeConfig) -> dict[str, Any]:
    """``{"features": [offered], "lacks": {feature: why not}, "labels": {...}}``; it may probe (a container
    engine): off any request path."""
    features = node_features(config.workload_context)
    return {"features": [name for name, why_not in features.items() if why_not is None],
            "lacks": {name: why_not for name, why_not in features.items() if why_not is not None},
            "labels": dict(config.labels)}
