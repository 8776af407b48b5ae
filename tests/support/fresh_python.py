"""Code run in a fresh interpreter from the checkout: for what a process imports at its start, where what the
test's own interpreter has imported already is beside the point."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fresh_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in the checkout, with ``env`` added to this environment; its output as text."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
