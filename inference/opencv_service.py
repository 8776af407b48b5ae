"""``cnet-inference-opencv --cascade face --port P``: an OpenCV Haar cascade detection service."""
from __future__ import annotations

import argparse

from inference.cascades import CASCADE_FILES
from inference.haar import HaarDetector
from inference.server import add_common_arguments, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cnet-inference-opencv", description=__doc__.splitlines()[0])
    parser.add_argument("--cascade", choices=sorted(CASCADE_FILES), default="face")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    serve("opencv", args, lambda: HaarDetector(args.cascade, args.threads, args.name))


if __name__ == "__main__":
    main()
