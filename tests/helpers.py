"""Helpers shared by the test modules."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from torch_foo.testing import assert_same  # noqa: F401  (the comparison of foo results with CPU ones)

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter from the repo root, with the same build cache as this process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )
