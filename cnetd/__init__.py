"""CNET node daemon: configuration, supervisord layout, API, register and scheduler processes."""

__version__ = "0.3.0"  # the one place the version is written (setup.py reads it)
