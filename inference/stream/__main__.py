"""``python -m inference.stream --config FILE``: runs one stream (the ``stream`` workload's program). The
config is what its executor wrote; the detector signature comes in the environment (CNET_STREAM_SIGNATURE)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from inference.stream.detector import DetectorClient
from inference.stream.publish import Mqtt, Sink, Webhook
from inference.stream.runner import StreamRunner, StreamSettings, install_stop

SIGNATURE_ENV = "CNET_STREAM_SIGNATURE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.stream", description=__doc__)
    parser.add_argument("--config", required=True, type=Path, help="the stream's config (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = json.loads(args.config.read_text(encoding="utf-8"))
    detector = DetectorClient(config["detector_api"], config["detector"], config["id"],
                              os.environ.get(SIGNATURE_ENV, ""), config.get("confidence"), config.get("classes") or [])
    sinks: list[Sink] = []
    if config.get("webhook"):
        sinks.append(Webhook(config["webhook"]))
    if config.get("mqtt"):
        mqtt = config["mqtt"]
        sinks.append(Mqtt(mqtt["host"], mqtt["port"], mqtt["topic"], client_id=f"cnet-stream-{config['id']}"))
    motion = config.get("motion")
    settings = StreamSettings(
        stream_id=config["id"], source=config["source_url"], fps=config["fps"], folder=args.config.parent,
        confidence=config.get("confidence"), classes=config.get("classes") or [],
        motion_threshold=motion["threshold"] if motion else None, snapshot=config.get("snapshot", False),
        keep_events=config.get("keep_events", 1000))
    runner = StreamRunner(settings, detector, sinks)
    install_stop(runner)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
