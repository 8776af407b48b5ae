"""The monitor process: supervisord's event listener (record transitions as programs change state) and the
health checks, which alone decide a service's readiness.

Run by supervisord as ``python -m cnetd.monitor``."""
