"""Workload executors (one per type), their lifecycle rules and the supervisord event listener."""
