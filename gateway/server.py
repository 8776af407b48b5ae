"""``cnet-gateway-data --base-path DIR --bucket NAME --port P``: the read-only S3-subset data gateway."""
from __future__ import annotations

import argparse
import os

from cnetd.common.service_runner import run_service, service_log_path
from cnetd.common.addresses import is_loopback
from gateway import RESERVED_BUCKETS, SECRET_KEY_ENV
from gateway.app import create_gateway_app
from gateway.sigv4 import GatewayKeys



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cnet-gateway-data", description=__doc__.splitlines()[0])
    parser.add_argument("--base-path", required=True, help="directory whose files are the bucket's objects")
    parser.add_argument("--bucket", default="cnet")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--log-dir", default=".")
    parser.add_argument("--access-key", help=f"require requests signed with this key (AWS SigV4); its secret "
                                             f"comes from ${SECRET_KEY_ENV}, never the command line")
    args = parser.parse_args(argv)
    if args.bucket in RESERVED_BUCKETS:
        parser.error(f"--bucket {args.bucket} is one of the gateway's own paths ({', '.join(RESERVED_BUCKETS)})")
    keys = None
    if args.access_key:
        secret = os.environ.get(SECRET_KEY_ENV)
        if not secret:
            parser.error(f"--access-key needs its secret in ${SECRET_KEY_ENV}")
        keys = GatewayKeys(args.access_key, secret)
    elif not is_loopback(args.host):
        parser.error(f"--host {args.host} is reachable from other machines: give --access-key (and ${SECRET_KEY_ENV})")
    run_service(lambda: create_gateway_app(args.base_path, args.bucket, keys), args.host, args.port, args.threads,
                service_log_path(args.log_dir, "gateway", args.port))


if __name__ == "__main__":
    main()
