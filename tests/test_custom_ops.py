"""The custom operators torch.ops.foo.mymuladd / mymul / myadd_out on CPU and foo."""
import pytest
import torch

import torch_foo  # noqa: F401
from torch_foo import ops

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("device", ["cpu", "foo:0", "foo:1"])
@pytest.mark.parametrize("dtype", DTYPES + [torch.float16, torch.bfloat16])
def test_values(device, dtype):
    a = torch.randn(3, 5, dtype=dtype)
    b = torch.randn(3, 5, dtype=dtype)
    result = ops.mymuladd(a.to(device), b.to(device), 2.5)
    assert result.device == torch.device(device)
    torch.testing.assert_close(result.cpu(), a * b + 2.5)
    torch.testing.assert_close(ops.mymul(a.to(device), b.to(device).t().contiguous().t()).cpu(), a * b)
    out = torch.empty(3, 5, dtype=dtype, device=device)
    ops.myadd_out(a.to(device), b.to(device), out)
    torch.testing.assert_close(out.cpu(), a + b)


def test_opcheck_cpu():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3, requires_grad=True)
    torch.library.opcheck(torch.ops.foo.mymuladd.default, (a, b, 1.5))
    torch.library.opcheck(torch.ops.foo.mymul.default, (a, b))
    torch.library.opcheck(torch.ops.foo.myadd_out.default, (a.detach(), b.detach(), torch.empty(4, 3)))


def test_opcheck_foo():
    # opcheck cannot check autograd registration on a custom device (see README): no requires_grad here.
    a = torch.randn(4, 3, device="foo")
    b = torch.randn(4, 3, device="foo")
    torch.library.opcheck(torch.ops.foo.mymuladd.default, (a, b, 1.5))
    torch.library.opcheck(torch.ops.foo.mymul.default, (a, b))
    torch.library.opcheck(torch.ops.foo.myadd_out.default, (a, b, torch.empty(4, 3, device="foo")))


@pytest.mark.parametrize("device", ["cpu", "foo"])
def test_gradcheck(device):
    a = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: ops.mymuladd(x, y, 0.5), (a, b))
    assert torch.autograd.gradcheck(ops.mymul, (a, b))


@pytest.mark.parametrize("device,backend", [("cpu", "inductor"), ("cpu", "aot_eager"), ("foo", "aot_eager")])
def test_torch_compile_fullgraph(device, backend):
    torch._dynamo.reset()

    def f(a, b):
        return ops.mymuladd(a, b, 1.0).relu() + ops.mymul(a, b)

    compiled = torch.compile(f, fullgraph=True, backend=backend)
    a = torch.randn(8, device=device)
    b = torch.randn(8, device=device)
    torch.testing.assert_close(compiled(a, b).cpu(), f(a, b).cpu())


def test_bad_inputs_give_clear_errors():
    with pytest.raises(RuntimeError, match="same shape"):
        ops.mymuladd(torch.randn(3), torch.randn(4), 1.0)
    with pytest.raises(RuntimeError, match="floating point"):
        ops.mymul(torch.ones(3, dtype=torch.int64), torch.ones(3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="same dtype"):
        ops.mymul(torch.ones(3), torch.ones(3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="same device"):
        ops.mymul(torch.ones(3, device="foo"), torch.ones(3))
    with pytest.raises(RuntimeError, match="out must match"):
        ops.myadd_out(torch.ones(3), torch.ones(3), torch.empty(4))
