"""Data: safe object keys, and the read-only S3-subset gateway over a node's data directory."""

SECRET_KEY_ENV = "CNET_GATEWAY_SECRET_KEY"  # where a gateway finds its secret key: never its command line
