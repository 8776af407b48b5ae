"""The node's web console: static HTML, JS and CSS served by the API at / (page) and /ui/ (assets)."""
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
