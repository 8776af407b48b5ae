"""The register process: this node's heartbeats out, its neighbours' in, and discovery of the parent and peers.

Run by supervisord as ``python -m cnetd.register``."""
