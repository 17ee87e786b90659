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


FOO_DEVICES = ["foo:0", "foo:1"]


@pytest.mark.parametrize("device", FOO_DEVICES)
def test_bad_inputs_give_clear_errors_on_foo(device):
    def t(*shape, dtype=torch.float32):
        return torch.ones(*shape, dtype=dtype, device=device)

    with pytest.raises(RuntimeError, match=r"mymuladd: a and b must have the same shape, got \[3\] and \[4\]"):
        ops.mymuladd(t(3), t(4), 1.0)
    with pytest.raises(RuntimeError, match="mymul: a and b must have the same shape"):
        ops.mymul(t(3, 2), t(2, 3))
    for dtype in (torch.int64, torch.bool, torch.complex64):
        with pytest.raises(RuntimeError, match="floating point"):
            ops.mymul(t(3, dtype=dtype), t(3, dtype=dtype))
    with pytest.raises(RuntimeError, match="mymuladd: expected floating point tensors, got Long"):
        ops.mymuladd(t(3, dtype=torch.int64), t(3, dtype=torch.int64), 1.0)
    with pytest.raises(RuntimeError, match="mymul: a and b must have the same dtype, got Float and Double"):
        ops.mymul(t(3), t(3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="myadd_out: expected floating point"):
        ops.myadd_out(t(3, dtype=torch.int64), t(3, dtype=torch.int64), t(3, dtype=torch.int64))
    out = torch.zeros(6, device=device)
    for bad_out, message in [(out[:4], "out must match a in shape"), (t(3, dtype=torch.float64), "out must match a"),
                             (out[::2], "out must be contiguous")]:
        with pytest.raises(RuntimeError, match=message):
            ops.myadd_out(t(3), t(3), bad_out)
    assert not out.cpu().any()  # a rejected call writes nothing
    torch.testing.assert_close(ops.mymuladd(t(3), t(3), 1.0).cpu(), torch.full((3,), 2.0))  # and the device still works


MIXED_DEVICES = {
    "mymuladd foo:0 foo:1": lambda: ops.mymuladd(torch.ones(3, device="foo:0"), torch.ones(3, device="foo:1"), 1.0),
    "mymul foo:1 foo:0": lambda: ops.mymul(torch.ones(3, device="foo:1"), torch.ones(3, device="foo:0")),
    "mymul foo cpu": lambda: ops.mymul(torch.ones(3, device="foo:1"), torch.ones(3)),
    "mymul cpu foo": lambda: ops.mymul(torch.ones(3), torch.ones(3, device="foo:1")),
    "mymuladd cpu foo": lambda: ops.mymuladd(torch.ones(3), torch.ones(3, device="foo:0"), 1.0),
    "mymul 0-d cpu foo": lambda: ops.mymul(torch.ones(()), torch.ones((), device="foo:0")),
    "mymuladd requires_grad foo:0 foo:1": lambda: ops.mymuladd(torch.ones(3, device="foo:0", requires_grad=True),
                                                               torch.ones(3, device="foo:1", requires_grad=True), 1.0),
    "myadd_out a foo:0 b foo:1": lambda: ops.myadd_out(torch.ones(3, device="foo:0"), torch.ones(3, device="foo:1"),
                                                       torch.zeros(3, device="foo:0")),
    "myadd_out a cpu b foo": lambda: ops.myadd_out(torch.ones(3), torch.ones(3, device="foo:0"), torch.zeros(3)),
}


@pytest.mark.parametrize("name", sorted(MIXED_DEVICES))
def test_mixed_devices_give_clear_errors(name):
    with pytest.raises(RuntimeError, match=r"must be on the same device, got (foo:\d|cpu) and (foo:\d|cpu)"):
        MIXED_DEVICES[name]()


@pytest.mark.parametrize("a_device,out_device", [("foo:0", "foo:1"), ("foo:1", "foo:0"), ("foo:0", "cpu"),
                                                 ("cpu", "foo:1")])
def test_myadd_out_rejects_out_on_another_device(a_device, out_device):
    out = torch.zeros(3, device=out_device)
    with pytest.raises(RuntimeError, match=f"out must match a in shape, dtype and device, got .* on {out_device} "
                                           f"for a .* on {a_device}"):
        ops.myadd_out(torch.ones(3, device=a_device), torch.ones(3, device=a_device), out)
    assert not out.cpu().any()


def _writes_through_myadd_out(a, b, out, base):
    """myadd_out into a graph input and into a contiguous view with an offset of another: both mutations must be
    visible to the caller after a compiled call."""
    ops.myadd_out(a, b, out)
    ops.myadd_out(ops.mymul(a, b), out, base[1:3])
    return out * 2, base.sum()


@pytest.mark.parametrize("device,backend", [("cpu", "inductor"), ("foo:0", "aot_eager"), ("foo:1", "aot_eager")])
def test_myadd_out_under_torch_compile(device, backend):
    """myadd_out mutates out (Tensor(a!) in its schema): torch.compile functionalizes it and writes the result back."""
    torch._dynamo.reset()
    compiled = torch.compile(_writes_through_myadd_out, fullgraph=True, backend=backend)
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    expected_out, expected_base = torch.zeros(2, 4), torch.zeros(4, 4)
    expected = _writes_through_myadd_out(a, b, expected_out, expected_base)
    out, base = torch.zeros(2, 4, device=device), torch.zeros(4, 4, device=device)
    out_ptr, base_ptr = out.data_ptr(), base.data_ptr()
    result = compiled(a.to(device), b.to(device), out, base)
    for got, want in [(result[0], expected[0]), (result[1], expected[1]), (out, expected_out), (base, expected_base)]:
        assert got.device == torch.device(device)
        torch.testing.assert_close(got.cpu(), want)
    assert (out.data_ptr(), base.data_ptr()) == (out_ptr, base_ptr)  # written in place, not replaced
    # the kernel's checks still apply to a compiled call (out is a graph input, so the call is kept)
    add_into = torch.compile(_add_into, fullgraph=True, backend=backend)
    bad_out = torch.zeros(3, 4, device=device)
    with pytest.raises(RuntimeError, match="myadd_out: out must match a in shape"):
        add_into(a.to(device), b.to(device), bad_out)
    assert not bad_out.cpu().any()


def _add_into(a, b, out):
    ops.myadd_out(a, b, out)


def test_myadd_out_bad_out_is_rejected_when_traced():
    def f(a, b):
        ops.myadd_out(a, b, torch.empty(4, device=a.device))  # wrong shape, result unused
        return a + 1

    a = torch.ones(3, device="foo:1")
    with pytest.raises(RuntimeError, match="out must match"):
        f(a, a)
    torch._dynamo.reset()
    with pytest.raises(RuntimeError, match="myadd_out.*out"):
        torch.compile(f, fullgraph=True, backend="aot_eager")(a, a)


@pytest.mark.parametrize("device", FOO_DEVICES)
def test_gradcheck_mymuladd_on_foo(device):
    """gradcheck and gradgradcheck on foo with non-contiguous inputs and either input alone requiring grad; the
    gradients land on the inputs' device."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 3, dtype=torch.float64, generator=g).to(device).t().requires_grad_()  # transposed layout
    b = torch.randn(3, 8, dtype=torch.float64, generator=g).to(device)[:, ::2].requires_grad_()  # strided
    assert not a.is_contiguous() and not b.is_contiguous() and a.is_leaf and b.is_leaf

    def f(x, y):
        return ops.mymuladd(x, y, -0.75)

    assert torch.autograd.gradcheck(f, (a, b))
    assert torch.autograd.gradgradcheck(f, (a, b))
    assert torch.autograd.gradcheck(f, (a.detach(), b))
    assert torch.autograd.gradcheck(f, (a, b.detach()))
    f(a, b).sum().backward()
    for t, other in [(a, b), (b, a)]:
        assert t.grad.device == torch.device(device)
        torch.testing.assert_close(t.grad.cpu(), other.detach().cpu())
