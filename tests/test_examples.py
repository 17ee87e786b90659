"""The examples run end to end: quickstart.py and train_mlp.py as scripts, notebook.ipynb through a Jupyter kernel."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import torch_foo  # noqa: F401  (builds the backend here, once, before the examples' own processes import it)
from helpers import REPO

EXAMPLES = REPO / "examples"


def this_checkout_first() -> dict:
    """The environment for example processes: this checkout's torch_foo, whether or not it is installed."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def run_example(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=REPO, env=this_checkout_first(),
                          capture_output=True, text=True, timeout=timeout)


def test_quickstart():
    result = run_example("quickstart.py", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ("device count: 2", "round trip is exact", "mm on the second device", "mymuladd(a, b, 0.5)",
                 "through the CPU fallback", "quickstart: all checks passed"):
        assert line in result.stdout


@pytest.mark.parametrize("optimizer, device", [("sgd", "foo:1"), ("adam", "foo")])
def test_train_mlp_matches_cpu_without_fallbacks(optimizer, device):
    epochs = 8
    result = run_example("train_mlp.py", "--epochs", str(epochs), "--optimizer", optimizer, "--device", device,
                         "--min-accuracy", "0.8", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("epoch")] == [
        f"{epoch}/{epochs}" for epoch in range(1, epochs + 1)
    ]
    assert f"trained on {device} in" in result.stdout
    assert "ops that ran through the CPU fallback: none" in result.stdout
    assert "loss curves max abs difference" in result.stdout
    assert result.stdout.splitlines()[-1] == "OK"


def test_train_mlp_short_run_reports_its_accuracy_and_zero_epochs_is_refused():
    short = run_example("train_mlp.py", "--epochs", "2", "--no-compare", timeout=120)
    assert short.returncode == 0, short.stdout + short.stderr
    assert "too short for the 90% accuracy bar" in short.stdout and short.stdout.splitlines()[-1] == "OK"
    none = run_example("train_mlp.py", "--epochs", "0", timeout=60)
    assert none.returncode == 2
    assert "--epochs must be at least 1, got 0" in none.stderr


def test_train_mlp_fails_below_min_accuracy():
    result = run_example("train_mlp.py", "--epochs", "1", "--min-accuracy", "0.999", "--no-compare", timeout=120)
    assert result.returncode == 1
    assert "FAIL: test accuracy" in result.stdout
    assert "same run on cpu" not in result.stdout


def test_notebook_is_stored_without_outputs_and_runs(monkeypatch):
    # requirements.txt installs them; a machine without Jupyter (the device tool's) skips the notebook.
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")

    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells), "clear the outputs"

    monkeypatch.setenv("PYTHONPATH", this_checkout_first()["PYTHONPATH"])  # the kernel inherits this environment
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(EXAMPLES)}})  # cwd, to import train_mlp
    client.execute()

    outputs = [output for cell in code_cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    for line in ("foo devices: 2", "loss curves max abs difference:",
                 "ops that ran through the CPU fallback while training on foo: none", "with policy 'error'"):
        assert line in text
    assert any("image/png" in output.get("data", {}) for output in outputs), "the loss plot is missing"


@pytest.mark.slow
def test_custom_kernel_walkthrough_applies_builds_and_passes(tmp_path):
    """Follows examples/custom_kernel.md on a copy of csrc/ and tests/: its diffs must apply, the rebuilt backend must
    run erf natively, and the walk-through's test selection must pass."""
    walkthrough = (EXAMPLES / "custom_kernel.md").read_text()
    kernel_diff, *test_diffs = re.findall(r"```diff\n(.*?)```", walkthrough, re.DOTALL)
    shutil.copytree(REPO / "csrc", tmp_path / "csrc", ignore=shutil.ignore_patterns("build*"))
    shutil.copytree(REPO / "tests", tmp_path / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    applied = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch", "-d", str(tmp_path)], input=kernel_diff,
                             capture_output=True, text=True)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    test_ops = tmp_path / "tests" / "test_ops.py"
    for diff in test_diffs:
        old = [line[1:] for line in diff.splitlines() if line.startswith("-")]
        new = [line[1:] for line in diff.splitlines() if line.startswith("+")]
        content = test_ops.read_text()
        assert content.count("\n".join(old)) == 1, f"the walk-through's diff no longer matches tests/test_ops.py: {old}"
        test_ops.write_text(content.replace("\n".join(old), "\n".join(new)))

    env = dict(this_checkout_first(), TORCH_FOO_SOURCE_DIR=str(tmp_path / "csrc"),
               TORCH_FOO_BUILD_DIR=str(tmp_path / "build"), TORCH_FOO_QUIET="1")
    check = subprocess.run(
        [sys.executable, "-c", "import torch, torch_foo; x = torch.randn(4, device='foo'); "
         "assert torch.equal(torch.erf(x).cpu(), torch.erf(x.cpu())); print(torch_foo.fallback_stats())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "{}"
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_ops), "-k", "unary or native_ops"],
        cwd=tmp_path / "tests", env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout


@pytest.mark.slow
def test_benchmark_report_smoke_run(tmp_path):
    """benchmarks/report.py --quick runs the benchmarks, parses their output and writes the table and the plot."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "report.py"), "--quick", "--no-build", "--output-dir",
         str(tmp_path / "report")],  # a directory that does not exist yet
        cwd=REPO, env=this_checkout_first(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tmp_path = tmp_path / "report"
    table = (tmp_path / "results.md").read_text()
    for row in ("warm `import torch; import torch_foo` vs `import torch`", "small add (16)", "large cumsum",
                "MLP training step", "all_reduce 1 MB — 2 processes", "![foo/CPU time ratio per op](ops_ratio.png)"):
        assert row in table
    assert (tmp_path / "ops_ratio.png").read_bytes().startswith(b"\x89PNG")
