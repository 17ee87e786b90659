"""Helpers shared by the test modules."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter from the repo root, with the same build cache as this process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def assert_same(foo_result, cpu_result, device=None, **tolerances) -> None:
    """foo result equals the CPU result: same dtype, shape and values, on a foo device.

    With `device` (e.g. "foo:1"), every tensor of the result, also inside tuples and lists, must be on exactly that
    device (a result on foo:0 instead of foo:1 fails); without it, or with an index-less "foo", any foo device passes.
    """
    if isinstance(cpu_result, (tuple, list)):
        assert isinstance(foo_result, (tuple, list)), type(foo_result)
        assert len(foo_result) == len(cpu_result)
        for f, c in zip(foo_result, cpu_result):
            assert_same(f, c, device, **tolerances)
        return
    if not isinstance(cpu_result, torch.Tensor):
        assert foo_result == cpu_result
        return
    assert isinstance(foo_result, torch.Tensor), type(foo_result)
    expected = torch.device(device if device is not None else "foo")
    assert foo_result.device.type == expected.type, foo_result.device
    if expected.index is not None:
        assert foo_result.device == expected, f"result on {foo_result.device}, expected {expected}"
    assert foo_result.dtype == cpu_result.dtype
    assert foo_result.shape == cpu_result.shape
    torch.testing.assert_close(foo_result.cpu(), cpu_result, equal_nan=True, **tolerances)
