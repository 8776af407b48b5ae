"""The scheduler process: placement, admission, launches, delegation, the model cache and deployments.

Run by supervisord as ``python -m cnetd.scheduler``."""
