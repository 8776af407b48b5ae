"""The ``stream`` workload's program: reads a camera (RTSP, HTTP MJPEG, a video file), samples its frames,
sends them to a detector through a node's API, and keeps and publishes what it finds as events."""
