"""Data: safe object keys, and the read-only S3-subset gateway over a node's data directory."""

RESERVED_BUCKETS = ("health", "metrics", "s3")  # the gateway's own paths: no bucket may be named so
SECRET_KEY_ENV = "CNET_GATEWAY_SECRET_KEY"  # where a gateway finds its secret key: never its command line
