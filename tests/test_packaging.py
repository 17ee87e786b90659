"""A plain (non-editable) install: the wheel carries the C++ sources and compiles nothing; the installed package's
first import builds from its own copy of the sources, later imports load that build."""
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPILING = "torch_foo: compiling"


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_wheel_ships_sources_and_installed_package_builds_on_first_import(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        cwd=tmp_path)
    (wheel,) = tmp_path.glob("torch_foo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "torch_foo/_csrc/foo/allocator.cpp" in names
    assert "torch_foo/_csrc/runtime/foo_runtime.h" in names
    assert not [n for n in names if n.endswith((".so", ".o"))], "the install step compiled something"
    assert not [n for n in names if "/tests/" in n], "test sources of csrc/ were packaged"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    # A clean environment: a PYTHONPATH naming the checkout (whose torch_foo.egg-info `pip wheel` just wrote) would
    # make pip take torch_foo as installed already.
    # The ninja beside this interpreter (where pip put it; not necessarily in /usr/bin), else the one on PATH.
    ninja_dir = Path(shutil.which("ninja", path=sysconfig.get_path("scripts")) or shutil.which("ninja")).parent
    env = {"PATH": f"{venv / 'bin'}:{ninja_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
           "TORCH_FOO_BUILD_DIR": str(tmp_path / "cache"), "MAX_JOBS": "2"}
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], env=env)
    # Then torch and the other dependencies from this interpreter's site-packages, also when it is itself a virtual
    # environment (--system-site-packages would give the base interpreter's, without torch). After the install, so
    # pip does not take an installed torch_foo there for this one; path lines only, so the .pth files there (an
    # editable torch_foo) are not processed.
    venv_site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env=env).stdout.strip()
    Path(venv_site, "outer_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    code = ("import torch, torch_foo; print(torch_foo.library_path); "
            "print(torch.ones(3, device='foo:1').add(1).cpu().tolist())")
    first = run([python, "-c", code], cwd=tmp_path, env=env)
    library, values = first.stdout.split("\n")[:2]
    assert COMPILING in first.stderr
    assert values == "[2.0, 2.0, 2.0]"
    assert str(tmp_path / "cache") in library
    installed_sources = run([python, "-c", "import torch_foo._build as b; print(b.backend_specs().state.source_dir)"],
                            cwd=tmp_path, env=env).stdout.strip()
    assert installed_sources.startswith(str(venv)) and installed_sources.endswith("_csrc")

    second = run([python, "-c", code], cwd=tmp_path, env=env)
    assert COMPILING not in second.stderr
    assert second.stdout == first.stdout
