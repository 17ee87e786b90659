"""Edit the C++ and reload in a live process: a Jupyter kernel holding tensors, a model, a stream and RNG state gets
new kernels through torch_foo.reload() and importlib.reload(torch_foo); an edit of the state library gets a clear
error; a registration error neither aborts nor loses the working kernels. Each test works on a copy of csrc/ (the
unchanged copy hashes as the checkout does, so only the edited unit compiles)."""
import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import torch_foo  # noqa: F401  (builds the backend the copies start from)
from helpers import REPO, run_python
from torch_foo import _build

MULADD = "mulAddLoop(a, b, c, true, out);"
MISNAMED = 'm.impl("mymul", &mymulCpu);'


def copy_of_sources(tmp_path: Path) -> Path:
    sources = tmp_path / "csrc"
    shutil.copytree(REPO / "csrc", sources, ignore=shutil.ignore_patterns("build*", "tests"))
    return sources


NOTEBOOK_CELLS = [
    """
    import copy, importlib, warnings
    from pathlib import Path
    import torch, torch_foo
    sources = Path(torch_foo._build.backend_specs().kernels.source_dir)
    custom_ops = sources / "kernels" / "custom_ops.cpp"
    original = custom_ops.read_text()
    torch.manual_seed(0)
    x_cpu = torch.randn(4, 4)
    x = x_cpu.to("foo")
    model_cpu = torch.nn.Linear(4, 2)
    model = copy.deepcopy(model_cpu).foo()
    optimizer, optimizer_cpu = (torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (model, model_cpu))
    stream = torch.foo.Stream()
    torch.foo.manual_seed(7)
    rng_state = torch.foo.get_rng_state()
    def train_step():
        for m, o, inputs in ((model, optimizer, x), (model_cpu, optimizer_cpu, x_cpu)):
            o.zero_grad()
            m(inputs).square().sum().backward()
            o.step()
        for p, p_cpu in zip(model.parameters(), model_cpu.parameters()):
            torch.testing.assert_close(p.cpu(), p_cpu)
    train_step()
    torch.testing.assert_close(torch_foo.ops.mymuladd(x, x, 1.0).cpu(), x_cpu * x_cpu + 1)
    print("libraries", len(torch_foo._registration.mapped_backend_libraries()))
    """,
    f"""
    custom_ops.write_text(original.replace({MULADD!r}, {MULADD.replace("c,", "c + 100,")!r}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import torch_foo
    print("stale warning:", [str(w.message) for w in caught if "Call torch_foo.reload()" in str(w.message)] != [])
    torch_foo.reload()
    torch.testing.assert_close(torch_foo.ops.mymuladd(x, x, 1.0).cpu(), x_cpu * x_cpu + 101)
    train_step()  # the earlier tensors, model and optimizer state work with the new kernels
    with torch.foo.stream(stream):
        y = x * 2
    stream.synchronize()
    torch.testing.assert_close(y.cpu(), x_cpu * 2)
    assert torch.equal(torch.foo.get_rng_state(), rng_state)
    print("reloaded kernels", torch_foo.kernels_library_path.name)
    """,
    """
    guard = sources / "foo" / "guard.cpp"
    guard_source = guard.read_text()
    guard.write_text(guard_source + "// an edit of the state library\\n")
    try:
        torch_foo.reload()
        print("no error")
    except torch_foo.RestartRequired as error:
        print("restart error:", "needs a restart of the Python process" in str(error), str(guard) in str(error))
    finally:
        guard.write_text(guard_source)
    torch.testing.assert_close(torch_foo.ops.mymuladd(x, x, 1.0).cpu(), x_cpu * x_cpu + 101)  # still alive
    """,
    """
    custom_ops.write_text(original)
    importlib.reload(torch_foo)  # back to the first build, still mapped: nothing new is loaded
    torch.testing.assert_close(torch_foo.ops.mymuladd(x, x, 1.0).cpu(), x_cpu * x_cpu + 1)
    train_step()
    print("libraries", len(torch_foo._registration.mapped_backend_libraries()))
    """,
]


@pytest.mark.slow
def test_notebook_edits_a_kernel_reloads_and_keeps_its_state(tmp_path, monkeypatch):
    # requirements.txt installs them; a machine without Jupyter (the device tool's) skips the notebook.
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")

    sources = copy_of_sources(tmp_path)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in NOTEBOOK_CELLS])
    monkeypatch.setenv("TORCH_FOO_SOURCE_DIR", str(sources))  # the kernel inherits this environment
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{os.environ.get('PYTHONPATH', '')}")
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=900,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on an error, DeadKernelError if the process died

    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.outputs)
    assert "libraries 2\n" in text  # the state library and one kernels library
    assert "stale warning: True" in text
    assert "reloaded kernels torch_foo_kernels-" in text
    assert "restart error: True True" in text
    assert text.rstrip().endswith("libraries 3")  # two kernels builds loaded; the revert mapped nothing new


@pytest.fixture(scope="module")
def misnamed_kernel_sources(tmp_path_factory) -> Path:
    """A copy of the sources whose custom_ops.cpp registers a kernel for an operator that does not exist, built."""
    sources = copy_of_sources(tmp_path_factory.mktemp("misnamed"))
    custom_ops = sources / "kernels" / "custom_ops.cpp"
    custom_ops.write_text(custom_ops.read_text().replace(MISNAMED, MISNAMED + '\n  m.impl("mymull", &mymulCpu);'))
    specs = _build.backend_specs()
    _build.ensure_built(dataclasses.replace(specs.kernels, source_dir=sources,
                                            links=dataclasses.replace(specs.state, source_dir=sources)))
    return sources


@pytest.mark.slow
def test_import_after_a_registration_error_then_a_fix_works(misnamed_kernel_sources):
    """The natural loop: `import torch_foo` fails with the kernel registration error; fix the source; run the same
    import again in the same process."""
    custom_ops = misnamed_kernel_sources / "kernels" / "custom_ops.cpp"
    result = run_python(f"""
        from pathlib import Path
        import torch
        try:
            import torch_foo
        except ImportError as error:
            print(type(error).__name__, "|", str(error).replace(chr(10), " "))
        custom_ops = Path({str(custom_ops)!r})
        custom_ops.write_text(custom_ops.read_text().replace('\\n  m.impl("mymull", &mymulCpu);', ""))
        import torch_foo
        x = torch.arange(4.0, device="foo")
        print(torch_foo.ops.mymuladd(x, x, 1.0).cpu().tolist(), torch.foo.device_count())
    """, env={"TORCH_FOO_SOURCE_DIR": str(misnamed_kernel_sources), "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"})
    custom_ops.write_text(custom_ops.read_text().replace(MISNAMED, MISNAMED + '\n  m.impl("mymull", &mymulCpu);'))
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("KernelRegistrationError | ")
    assert "foo::mymull" in first and "custom_ops.cpp:" in first  # the op and the family's file:line
    assert second == "[1.0, 2.0, 5.0, 10.0] 2"


@pytest.mark.slow
@pytest.mark.skipif(
    not any(ep.name == "torch_foo" for ep in entry_points(group="torch.backends")),
    reason="torch_foo is not installed (pip install -e .), so its torch.backends entry point does not exist",
)
def test_import_torch_with_a_cached_build_that_does_not_register_warns_once(misnamed_kernel_sources):
    result = subprocess.run(
        [sys.executable, "-c", "import torch; print(hasattr(torch, 'foo'))"],
        env={**os.environ, "TORCH_FOO_SOURCE_DIR": str(misnamed_kernel_sources)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert result.stderr.count("torch_foo: `import torch` left foo disabled") == 1, result.stderr
    assert "did not register" in result.stderr
