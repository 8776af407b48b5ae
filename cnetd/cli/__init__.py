"""``cnet``: the operator's command line over a node's REST API (as ``nomad`` or ``kubectl`` are). It is a
client only: it imports nothing of the daemon but the foundation layer."""
