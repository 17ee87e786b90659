"""Kernel registration faults, driven by csrc/foo/registration.cpp built with a small fixture
(build_fixtures/bad_kernels) instead of the whole backend: a family the dispatcher refuses while the library loads
must not abort the process, and a kernel registered under a name aten does not define must not go unnoticed."""
import shutil
import textwrap
from pathlib import Path

import pytest

from test_build import PRELUDE, REPO, run_python

FIXTURE = Path(__file__).resolve().parent / "build_fixtures" / "bad_kernels"

LOAD_AND_CHECK = PRELUDE + textwrap.dedent("""
    torch.ops.load_library(str(_build.ensure_built(spec)))
    print("families:", sorted(torch.ops.foo.kernel_families()))
    from torch_foo._registration import check_kernel_registration
    try:
        check_kernel_registration()
    except ImportError as error:
        print(error)
    x = torch.ones(2)
    print("cpu abs still works:", torch.equal(x.abs(), x))
""")


@pytest.mark.slow
def test_refused_and_misnamed_kernels_raise_import_error_without_aborting(tmp_path):
    sources = tmp_path / "src"
    shutil.copytree(FIXTURE, sources)
    (sources / "foo").mkdir()
    for name in ("registration.h", "registration.cpp"):
        shutil.copy(REPO / "csrc" / "foo" / name, sources / "foo" / name)

    result = run_python(LOAD_AND_CHECK, sources, tmp_path / "root", TORCH_FOO_QUIET="1")

    assert result.returncode == 0, result.stderr  # not std::terminate from a static initialiser
    out = result.stdout
    assert "families: ['correct', 'misspelled']" in out  # the refused family is not left half registered
    assert "the foo backend's kernels did not register" in out
    assert "foo kernel family 'wrong_signature' (" in out and "kernels.cpp" in out
    assert "aten::abs" in out  # the dispatcher's own explanation of the mismatch
    assert "aten::absolutely_not_an_op" in out and "misspelled" in out
    assert "cpu abs still works: True" in out
