"""The node's REST API (Falcon under gunicorn)."""
