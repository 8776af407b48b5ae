"""CNET node daemon: configuration, supervisord layout, API, register and scheduler processes."""

__version__ = "0.1.0"
