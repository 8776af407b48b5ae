"""The node's shared core: what more than one of its processes needs (config, record transitions, the
supervisord client, metrics, the shape of a submission and of a deployment, the API → scheduler channel)."""
