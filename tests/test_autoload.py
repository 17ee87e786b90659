"""The torch.backends entry point: `import torch` alone makes foo usable; TORCH_DEVICE_BACKEND_AUTOLOAD=0 turns it
off. Needs the package installed (pip install -e .) so the entry point exists."""
from importlib.metadata import entry_points

import pytest

import torch_foo  # noqa: F401  (builds the backend so autoload finds it)
from helpers import run_python

pytestmark = pytest.mark.skipif(
    not any(ep.name == "torch_foo" for ep in entry_points(group="torch.backends")),
    reason="torch_foo is not installed (pip install -e .), so its torch.backends entry point does not exist",
)


def test_import_torch_alone_enables_foo():
    result = run_python("import torch; print(torch.ones(2, device='foo').device, torch.foo.device_count())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["foo:0", "2"]


def test_autoload_can_be_switched_off():
    result = run_python(
        "import sys, torch; print(hasattr(torch, 'foo'), 'torch_foo' in sys.modules)",
        env={"TORCH_DEVICE_BACKEND_AUTOLOAD": "0"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_explicit_import_after_autoload_is_harmless():
    result = run_python("import torch, torch_foo; import importlib; print(torch.foo.is_available())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
