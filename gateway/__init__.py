"""Data: safe object keys, and the read-only S3-subset gateway over a node's data directory."""
