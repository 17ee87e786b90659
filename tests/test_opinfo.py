"""PyTorch's whole operator database (OpInfo op_db) on foo against CPU: no crash, no wrong value, no foo-only error.

tests/opinfo_sweep.py does the work, each op in a worker process so that a crash names its op. Every op of op_db
runs: each CPU-supported dtype of float32, float64, int64, bool, bfloat16 and complex64, the first 3 sample inputs,
the function, method and in-place variants, and a float32 backward pass; the ops of EXACT_OPS are compared bit for
bit. Anything that differs from CPU fails the test unless EXCLUDED below says why.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from opinfo_sweep import all_op_keys, sweep  # noqa: E402

SPARSE = "foo supports strided tensors only"
# op key -> (a text every excluded problem line of that op contains, why). Only matching lines are excused.
EXCLUDED = {
    "to_sparse": (SPARSE, "sparse layouts cannot live on foo: a clear NotImplementedError (test_sparse_is_refused)"),
    "sparse.mm.reduce": (SPARSE, "takes a sparse CSR input: refused as above"),
    "sparse.sampled_addmm": (SPARSE, "takes a sparse CSR input: refused as above"),
    "nn.functional.linear_cross_entropy.chunked_none": (
        "bfloat16 function",
        "its 'auto' accumulation policy is picked per device type in Python (torch/nn/modules/"
        "linear_cross_entropy_options.py): CPU accumulates bfloat16 in float32, other devices do not; CUDA differs "
        "from CPU the same way",
    ),
}


@pytest.mark.slow
def test_every_opinfo_matches_cpu():
    keys = all_op_keys()
    results, counts = sweep(keys, jobs=2, samples=3, exact=True)
    assert sorted(results) == sorted(keys)
    # The sweep compares (not only runs): about 14,600 forward results and 1,000 gradients with torch 2.13.
    assert counts["compared"] > 5000 and counts["gradients compared"] > 500, counts
    unexpected, stale = {}, []
    for key, problems in sorted(results.items()):
        marker = EXCLUDED.get(key, (None,))[0]
        left = [p for p in problems if marker is None or marker not in p]
        if left:
            unexpected[key] = left[:3]
        if key in EXCLUDED and len(left) == len(problems):
            stale.append(key)
    report = "\n".join(f"{key}:\n    " + "\n    ".join(lines) for key, lines in unexpected.items())
    assert not unexpected, f"{len(unexpected)} of {len(keys)} ops differ from CPU on foo:\n{report}"
    assert not stale, f"excluded ops that no longer fail (remove them from EXCLUDED): {stale}"


def test_the_sweep_reports_a_crash_by_name_and_goes_on(monkeypatch, tmp_path):
    # A worker that dies in the middle of an op: the op is reported as crashed, the next op still runs.
    monkeypatch.setenv("TORCH_FOO_SWEEP_CRASH_ON", "mm")
    results, _ = sweep(["abs", "mm", "neg"], jobs=1, samples=1)
    assert results["abs"] == [] and results["neg"] == []
    assert len(results["mm"]) == 1 and results["mm"][0].startswith("crashed the process (exit status -6)")
