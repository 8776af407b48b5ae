"""A real RTSP server for the stream tests: GStreamer's (Debian's gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0,
python3-gi), serving an H.264 file at ``rtsp://HOST:PORT/clip`` in real time, each client from its start.

Run with the system Python (``/usr/bin/python3``), which has the GObject bindings: ``rtsp_server.py FILE PORT
[HOST]``. It prints ``ready`` once it listens.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    path, port = sys.argv[1], sys.argv[2]
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(host)
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{path}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )')
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on {host}:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
