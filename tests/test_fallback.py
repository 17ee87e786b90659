"""Ops without a native kernel run through the in-place CPU fallback: results, aliasing, in-place and out= semantics,
device placement, the fallback report and the TORCH_FOO_FALLBACK policy."""
import pytest
import torch
import torch.nn.functional as F

import torch_foo
from helpers import assert_same, run_python


def both(fn, *cpu_args):
    """fn on CPU and on foo:1 (to catch device placement errors) with copies of the same inputs."""
    foo_args = [a.to("foo:1") if isinstance(a, torch.Tensor) else a for a in cpu_args]
    expected = fn(*cpu_args)
    actual = fn(*foo_args)
    assert_same(actual, expected)
    return foo_args, cpu_args


FALLBACK_CASES = {
    "index": lambda x, i: x[i],
    "index_bool": lambda x, i: x[x > 0],
    "index_put": lambda x, i: x.index_put((i,), torch.ones(x.shape[1], device=x.device)),
    "scatter": lambda x, i: torch.zeros(5, 4, device=x.device).scatter(0, i[:4].reshape(1, 4) % 5, x[:1]),
    "sort": lambda x, i: tuple(torch.sort(x, dim=1)),
    "topk": lambda x, i: tuple(torch.topk(x, 2, dim=1)),
    "cumsum": lambda x, i: torch.cumsum(x, 0),
    "embedding": lambda x, i: F.embedding(i, x),
    "conv2d": lambda x, i: F.conv2d(x.reshape(1, 1, 6, 4), torch.ones(2, 1, 3, 3, device=x.device)),
    "gather": lambda x, i: torch.gather(x, 0, (i % 6).reshape(-1, 1).expand(-1, 4)),
    "unique": lambda x, i: torch.unique(i),
    "nonzero": lambda x, i: torch.nonzero(x > 0),
    "arange": lambda x, i: torch.arange(5, device=x.device),
    "linspace": lambda x, i: torch.linspace(0, 1, 7, device=x.device),
}


@pytest.mark.parametrize("name", sorted(FALLBACK_CASES))
def test_fallback_ops_match_cpu(name):
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    i = torch.tensor([0, 2, 5, 1, 3])
    both(FALLBACK_CASES[name], x, i)


def test_in_place_and_out_forms_through_fallback():
    x = torch.randn(5, 3)
    (fx,), _ = both(lambda t: t, x)
    # in place on a view writes through to the base, as on CPU
    cpu = x.clone()
    foo = cpu.to("foo")
    cpu[1:].cumsum_(0)
    foo[1:].cumsum_(0)
    assert torch.equal(foo.cpu(), cpu)
    # out= with a wrongly sized out is resized, and the out tensor itself is returned
    out_cpu = torch.empty(0)
    out_foo = torch.empty(0, device="foo")
    returned = torch.cumsum(x.to("foo"), 1, out=out_foo)
    torch.cumsum(x, 1, out=out_cpu)
    assert returned is out_foo
    assert out_foo.shape == out_cpu.shape and torch.equal(out_foo.cpu(), out_cpu)
    # out= given a non-contiguous view
    base = torch.zeros(3, 10, device="foo")
    torch.cumsum(x.t().to("foo"), 1, out=base[:, ::2])
    ref = torch.zeros(3, 10)
    torch.cumsum(x.t(), 1, out=ref[:, ::2])
    assert torch.equal(base.cpu(), ref)


def test_fallback_view_results_alias_their_input():
    x = torch.arange(12.0, device="foo").reshape(3, 4)
    windows = x.unfold(1, 2, 1)  # a view op with a CPU kernel
    assert windows.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    x.add_(100)
    assert torch.equal(windows.cpu(), (torch.arange(12.0).reshape(3, 4) + 100).unfold(1, 2, 1))


def test_fallback_report():
    torch_foo.reset_fallback_stats()
    x = torch.randn(8, device="foo")
    torch.cumsum(x, 0)
    torch.cumsum(x, 0)
    torch.sort(x)
    stats = torch_foo.fallback_stats()
    assert stats["aten::cumsum.out"] == 2  # the functional form is composite: it reaches the device as cumsum.out
    assert any(name.startswith("aten::sort") for name in stats)
    torch_foo.reset_fallback_stats()
    assert torch_foo.fallback_stats() == {}


def test_fallback_policy_error_and_warn():
    x = torch.randn(8, device="foo")
    previous = torch_foo.fallback_policy()
    try:
        torch_foo.set_fallback_policy("error")
        with pytest.raises(NotImplementedError, match="cumsum"):
            torch.cumsum(x, 0)
        (x + 1).sum()  # native ops are unaffected
        torch_foo.set_fallback_policy("warn")
        with pytest.warns(UserWarning, match="cumsum"):
            torch.cumsum(x, 0)
        with pytest.raises(ValueError, match="allow, warn or error"):
            torch_foo.set_fallback_policy("sometimes")
    finally:
        torch_foo.set_fallback_policy(previous)


def test_fallback_policy_from_environment():
    result = run_python(
        """
        import warnings, torch, torch_foo
        x = torch.randn(4, device="foo")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cumsum(x, 0); torch.cumsum(x, 0)
        print(torch_foo.fallback_policy(), sum("cumsum" in str(w.message) for w in caught))
        """,
        env={"TORCH_FOO_FALLBACK": "warn"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["warn", "1"]


def test_fallback_rejects_mixed_devices():
    with pytest.raises(RuntimeError, match="same device"):
        torch.cumsum(torch.ones(3, device="foo:0"), 0, out=torch.empty(3, device="foo:1"))


def test_large_fallback_op_is_in_place():
    """The fallback must not copy its inputs: device memory grows only by the output."""
    x = torch.randn(1 << 20, device="foo")
    torch.foo.synchronize()
    torch.foo.reset_peak_memory_stats()
    before = torch.foo.memory_allocated()
    y = torch.cumsum(x, 0)
    assert torch.foo.max_memory_allocated() - before <= y.nbytes + 4096
