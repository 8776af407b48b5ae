"""``cnet-gateway-data --base-path DIR --bucket NAME --port P``: the read-only S3-subset data gateway."""
from __future__ import annotations

import argparse

from cnetd.service_runner import run_service, service_log_path
from gateway.app import create_gateway_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cnet-gateway-data", description=__doc__.splitlines()[0])
    parser.add_argument("--base-path", required=True, help="directory whose files are the bucket's objects")
    parser.add_argument("--bucket", default="cnet")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--log-dir", default=".")
    args = parser.parse_args(argv)
    run_service(lambda: create_gateway_app(args.base_path, args.bucket), args.host, args.port, args.threads,
                service_log_path(args.log_dir, "gateway", args.port))


if __name__ == "__main__":
    main()
