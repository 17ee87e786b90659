"""The torch.backends entry point: `import torch` alone makes foo usable; TORCH_DEVICE_BACKEND_AUTOLOAD=0 turns it
off. Needs the package installed (pip install -e .) so the entry point exists."""
from importlib.metadata import entry_points

import pytest

import torch_foo  # noqa: F401  (builds the backend so autoload finds it)
from helpers import run_python
from torch_foo import _build

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


def test_import_torch_without_a_build_warns_and_does_not_compile(tmp_path):
    """With no build for the current sources (an empty build cache), `import torch` must neither compile nor fail: it
    warns and leaves foo disabled. (`import torch_foo` would then compile the whole backend: not done here.)"""
    build_dir = tmp_path / "empty-cache"
    build_dir.mkdir(mode=0o700)
    result = run_python(
        """
        import sys, torch
        print(hasattr(torch, "foo"), "torch_foo" in sys.modules, torch._C._get_privateuse1_backend_name())
        try:
            torch.empty(1, device="foo")
            print("foo usable")
        except RuntimeError:
            print("foo unusable")
        """,
        env={"TORCH_FOO_BUILD_DIR": str(build_dir), "TORCH_FOO_QUIET": "0", "TORCH_FOO_VERBOSE": "1"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "left foo disabled (no build of the foo backend matches" in result.stderr, result.stderr
    assert "compiling" not in result.stderr.lower(), result.stderr
    assert result.stdout.split() == ["False", "False", "privateuseone", "foo", "unusable"]
    assert list(build_dir.iterdir()) == []  # nothing built, nothing locked


LEFT_DISABLED = "torch_foo: `import torch` left foo disabled"


@pytest.mark.parametrize(
    "env, error",
    [
        ({"CXX": "no-such-compiler-xyz"}, "apt-get install g++"),
        ({"TORCH_FOO_SANITIZE": "adress"}, "unknown sanitizer"),
        ({"TORCH_FOO_SOURCE_DIR": "/no/such/sources"}, "does not exist"),
        ({"TORCH_FOO_BUILD_DIR": "LINK"}, "it is a symbolic link"),
    ],
    ids=["no-compiler", "sanitizer-typo", "no-sources", "refused-cache"],
)
def test_a_broken_setup_never_breaks_import_torch(env, error, tmp_path):
    """`import torch` succeeds with one warning that says what happened and leaves foo disabled; only
    `import torch_foo` raises, with the full error. The refused cache is the working one reached through a link."""
    if env.get("TORCH_FOO_BUILD_DIR") == "LINK":
        link = tmp_path / "cache"
        link.symlink_to(_build._build_root(_build.backend_specs().state))
        env = {"TORCH_FOO_BUILD_DIR": str(link)}
    result = run_python(
        """
        import sys, torch
        print(hasattr(torch, "foo"), "torch_foo" in sys.modules)
        try:
            import torch_foo
        except ImportError as error:
            print(type(error).__name__, str(error).replace(chr(10), " "))
        """,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(LEFT_DISABLED) == 1, result.stderr
    assert error in result.stderr.split(LEFT_DISABLED)[1].splitlines()[0]  # the warning names the cause
    lines = result.stdout.splitlines()
    assert lines[0] == "False False"
    assert lines[1].startswith("BuildError") and error in lines[1], result.stdout


def test_no_left_disabled_warning_when_the_same_line_imports_torch_foo():
    result = run_python(
        """
        try:
            import torch, torch_foo
        except ImportError as error:
            print(type(error).__name__)
        """,
        env={"CXX": "no-such-compiler-xyz"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "BuildError"
    assert LEFT_DISABLED not in result.stderr, result.stderr
