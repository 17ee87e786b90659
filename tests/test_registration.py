"""Kernel registration faults, driven by the registry of csrc/foo/registration.cpp built with a small kernels library
(build_fixtures/bad_kernels) instead of the whole backend, in the backend's layout: the registry in a library loaded
once, the kernels in a library linked against it. A family the dispatcher refuses must neither abort the process nor
stay half registered, and must leave the kernels installed before in place."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_build import PRELUDE, REPO, clean_env

FIXTURE = Path(__file__).resolve().parent / "build_fixtures" / "bad_kernels"

# Installs the kernels built with each set of -D flags in turn, in one process: the reload sequence of the backend.
INSTALL_IN_TURN = PRELUDE + textwrap.dedent("""
    state = _build.BuildSpec(name="registry", source_dir=spec.source_dir, excluded_dirs=("kernels",))
    torch.ops.load_library(str(_build.ensure_built(state)))
    for flags in sys.argv[2:]:
        kernels = _build.BuildSpec(name="kernels", source_dir=spec.source_dir, compiled_dirs=("kernels",), links=state,
                                   reloadable=True, extra_cflags=tuple(flags.split()))
        library = _build.ensure_built(kernels)
        torch.ops.load_library(str(library))
        try:
            torch.ops.foo.install_kernels(str(library))
        except RuntimeError as error:
            print("refused:", error)
        print("installed:", flags or "-", torch.ops.foo.kernel_families(),
              torch._C._dispatch_has_kernel_for_dispatch_key("aten::neg", "PrivateUse1"),
              torch._C._dispatch_has_kernel_for_dispatch_key("aten::positive", "PrivateUse1"))
    x = torch.ones(2)
    print("cpu abs still works:", torch.equal(x.abs(), x))
""")


@pytest.mark.slow
def test_refused_families_raise_and_keep_the_previous_kernels(tmp_path):
    sources = tmp_path / "src"
    (sources / "kernels").mkdir(parents=True)
    shutil.copy(FIXTURE / "kernels.cpp", sources / "kernels")
    (sources / "foo").mkdir()
    for name in ("registration.h", "registration.cpp"):
        shutil.copy(REPO / "csrc" / "foo" / name, sources / "foo" / name)

    steps = ["", "-DWRONG_SIGNATURE", "-DMISSPELLED", "-DDEFINED_TWICE", ""]
    result = subprocess.run(
        [sys.executable, "-c", INSTALL_IN_TURN, str(sources), *steps],
        env=clean_env(tmp_path / "root", TORCH_FOO_QUIET="1"), capture_output=True, text=True, timeout=1200,
    )

    assert result.returncode == 0, result.stderr  # neither std::terminate nor a crash
    out = result.stdout
    installed = [line for line in out.splitlines() if line.startswith("installed:")]
    assert installed == [
        "installed: - ['correct'] True False",
        "installed: -DWRONG_SIGNATURE ['correct'] True False",  # refused: positive is withdrawn with its family
        "installed: -DMISSPELLED ['correct'] True False",
        "installed: -DDEFINED_TWICE ['correct'] True False",
        "installed: - ['correct'] True False",
    ], out
    refusals = out.split("refused: ")[1:]
    assert len(refusals) == 3, out
    wrong, misspelled, twice = refusals
    assert "foo kernel family 'wrong_signature' (" in wrong and "kernels.cpp:" in wrong
    assert "aten::abs" in wrong  # the dispatcher's own explanation of the mismatch
    assert "aten::absolutely_not_an_op" in misspelled and "misspelled" in misspelled
    assert "foo kernel family 'defined_twice' (" in twice and "foo::fixture_twice" in twice
    assert all("previously installed foo kernels stay in use" in refusal for refusal in refusals)
    assert "cpu abs still works: True" in out
